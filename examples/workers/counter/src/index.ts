import { DurableObject, env as globalEnv } from "cloudflare:workers";

interface Env {
  COUNTER: DurableObjectNamespace<Counter>;
  GREETING: string;
}

/** One counter per name, kept in SQLite; its methods are called over RPC. */
export class Counter extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS history (at INTEGER NOT NULL, value INTEGER NOT NULL)");
  }

  async increment(by = 1): Promise<number> {
    const value = ((await this.ctx.storage.get<number>("value")) ?? 0) + by;
    await this.ctx.storage.put("value", value);
    this.ctx.storage.sql.exec("INSERT INTO history (at, value) VALUES (?, ?)", Date.now(), value);
    return value;
  }

  async current(): Promise<{ value: number; changes: number }> {
    const value = (await this.ctx.storage.get<number>("value")) ?? 0;
    const changes = this.ctx.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM history").one().n;
    return { value, changes };
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const name = url.searchParams.get("name") ?? "default";
    const counter = env.COUNTER.getByName(name);
    switch (url.pathname) {
      case "/increment":
        return Response.json({ value: await counter.increment(Number(url.searchParams.get("by") ?? 1)) });
      case "/current":
        return Response.json(await counter.current());
      case "/greeting":
        // Bindings reach module scope too, through `env` from "cloudflare:workers".
        return new Response(`${env.GREETING} / ${(globalEnv as unknown as Env).GREETING}`);
      default:
        return new Response("Try /increment?name=a, /current?name=a or /greeting", { status: 404 });
    }
  },
} satisfies ExportedHandler<Env>;
