// The receiving side of a call: which member a path like `a.b.c` names on an RPC target,
// with Cloudflare's visibility rules.
//
// - On a Durable Object or an RpcTarget, only class-level members are visible: the
//   prototype chain below the base class, never own instance fields, never Object's
//   methods. Reserved names are refused.
// - On a plain object or a function (returned from, or passed to, a call), own
//   properties are visible.
// - Anything else (instances of other classes, null-prototype objects) cannot be entered:
//   the error names the step that reached it.
import { OpenDO } from "../durable-object.js";
import { notAFunction, notImplemented, reserved } from "./errors.js";
import { RpcTarget } from "./target.js";

/** Names a Durable Object stub keeps for itself (`fetch` has its own path). */
const DURABLE_OBJECT_RESERVED = new Set(["fetch", "connect", "alarm", "webSocketMessage", "webSocketClose", "webSocketError", "dup", "constructor"]);
const TARGET_RESERVED = new Set(["dup", "constructor"]);

/** Prototypes whose members are never reachable over RPC. */
const BASES = new Set<object | null>([Object.prototype, Function.prototype, OpenDO.prototype, RpcTarget.prototype, null]);

interface Found {
  /** `this` for a method call. */
  holder: unknown;
  value: unknown;
}

/** Resolves `path` on `root`; throws Cloudflare's errors for invisible or missing members. */
export function resolve(root: object, path: readonly string[]): Found {
  let holder: unknown = undefined;
  let value: unknown = root;
  for (let i = 0; i < path.length; i++) {
    const name = path[i]!;
    const current = value;
    if (i > 0 && !enterable(current)) throw notImplemented(path[i - 1]!);
    value = member(current as object, name, i === 0 && current === root);
    holder = current;
  }
  return { holder, value };
}

/** Calls the method `path` names on `root` with `args`. */
export function invoke(root: object, path: readonly string[], args: unknown[]): unknown {
  if (path.length === 0) {
    if (typeof root !== "function") throw notAFunction("");
    return Reflect.apply(root, undefined, args);
  }
  const { holder, value } = resolve(root, path);
  if (typeof value !== "function") throw notAFunction(path[path.length - 1] ?? "");
  return Reflect.apply(value, holder, args);
}

function enterable(value: unknown): boolean {
  if (typeof value === "function") return true;
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === Array.prototype || value instanceof RpcTarget || value instanceof OpenDO;
}

function member(target: object, name: string, isRoot: boolean): unknown {
  if (target instanceof OpenDO || target instanceof RpcTarget) {
    const reservedNames = target instanceof OpenDO ? DURABLE_OBJECT_RESERVED : TARGET_RESERVED;
    if (reservedNames.has(name)) throw reserved(name);
    return classMember(target, name);
  }
  if (isRoot || typeof target === "function" || typeof target === "object") {
    if (!Object.hasOwn(target, name)) throw notImplemented(name);
    return (target as Record<string, unknown>)[name];
  }
  throw notImplemented(name);
}

/** A member defined on the prototype chain below the base classes (getters are called). */
function classMember(target: object, name: string): unknown {
  for (let proto = Object.getPrototypeOf(target); !BASES.has(proto); proto = Object.getPrototypeOf(proto)) {
    const descriptor = Object.getOwnPropertyDescriptor(proto, name);
    if (descriptor === undefined) continue;
    if (descriptor.get !== undefined) return descriptor.get.call(target);
    if ("value" in descriptor) return descriptor.value;
    throw notImplemented(name);
  }
  throw notImplemented(name);
}

/** The RPC-visible method names of a class (for stubs that know them in advance). */
export function classMethodNames(Class: Function): string[] {
  const seen = new Set<string>();
  const names: string[] = [];
  for (let proto = Class.prototype; !BASES.has(proto); proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (seen.has(name)) continue; // overridden lower down
      seen.add(name);
      if (DURABLE_OBJECT_RESERVED.has(name)) continue;
      if (typeof Object.getOwnPropertyDescriptor(proto, name)!.value === "function") names.push(name);
    }
  }
  return names;
}
