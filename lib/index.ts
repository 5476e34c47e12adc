// The public API of @redwoodjs/open-do.
export { OpenDO, DurableObject } from "./durable-object.js";
export { Registry, type RegistryOptions, type NamespaceOptions } from "./registry.js";
export { DurableObjectNamespace, DurableObjectId, type DurableObjectJurisdiction } from "./namespace.js";
export { DurableObjectStub, type RpcMethods, type RpcResult } from "./stub.js";
export { RpcTarget } from "./rpc/target.js";
export { RpcStub, RpcPromise } from "./rpc/client.js";
export { DurableObjectState } from "./state.js";
export { DurableObjectStorage, type GetOptions, type PutOptions, type ListOptions } from "./storage.js";
export { DurableObjectTransaction } from "./transaction.js";
export { SqlStorage, SqlStorageCursor, type SqlStorageValue } from "./sql.js";
export { SyncKvStorage } from "./sync-kv.js";
export { listDurableObjectIds, runDurableObjectAlarm, runInDurableObject } from "./testing.js";
export { WebSocket, WebSocketPair, WebSocketRequestResponsePair } from "./websocket.js";
export { Response, type ResponseInit } from "./response.js";
export { Server, type ListenOptions, type ExecutionContext, type FetchHandler } from "./server.js";

// Cloudflare's globals (WebSocketPair, ...) for Durable Object code written for Cloudflare.
import "./globals.js";
export { nodeHandler, type NodeHandler, type NodeHandlerOptions } from "./adapters/node.js";
export { bunServe, type BunServeOptions } from "./adapters/bun.js";
