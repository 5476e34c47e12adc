// Node module customization hooks (module.register): `cloudflare:workers` resolves to our
// compatibility module. Runs on Node's loader thread.
let compatUrl = "";

export function initialize(data: { compatUrl: string }): void {
  compatUrl = data.compatUrl;
}

type Next = (specifier: string, context: unknown) => Promise<{ url: string }>;

export async function resolve(specifier: string, context: unknown, next: Next): Promise<{ url: string; shortCircuit?: boolean }> {
  if (specifier === "cloudflare:workers") return { url: compatUrl, shortCircuit: true };
  return next(specifier, context);
}
