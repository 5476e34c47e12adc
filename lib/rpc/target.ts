// `RpcTarget`: instances cross an RPC boundary by reference, as stubs that call back.

/**
 * Extend this to pass objects by reference over RPC: the receiver gets a stub whose calls
 * run on the original. Only class-level members (the prototype chain) are reachable;
 * instance fields are not. `[Symbol.dispose]()` runs once the last stub is disposed.
 */
export class RpcTarget {}
