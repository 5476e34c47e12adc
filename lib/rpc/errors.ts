// The errors of Cloudflare's RPC, with workerd's wording (api/worker-rpc.c++).
import { cloneError } from "../structured-clone/errors.js";

export const notImplemented = (name: string) => new TypeError(`The RPC receiver does not implement the method "${name}".`);

export const reserved = (name: string) => new TypeError(`'${name}' is a reserved method and cannot be called over RPC.`);

export const notAFunction = (name: string) => new TypeError(`"${name}" is not a function.`);

export const disposed = () => new Error("RPC stub used after being disposed.");

export const cannotPipeline = () => new TypeError("Can't pipeline on RPC that did not return an object.");

export const notSerializable = (typeName: string) =>
  cloneError(`Could not serialize object of type "${typeName}". This type does not support serialization.`);

export const noRpcSupport = () =>
  new TypeError(
    "The receiving Durable Object does not support RPC, because its class was not declared with `extends DurableObject`. " +
      "In order to enable RPC, make sure your class extends the special class `DurableObject`, which can be imported from " +
      'the module "cloudflare:workers".',
  );
