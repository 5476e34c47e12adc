import { DurableObject } from "cloudflare:workers";

interface Env {
  LIMITERS: DurableObjectNamespace<RateLimiter>;
  LIMIT: string;
  WINDOW_MS: string;
}

/**
 * A sliding-window rate limiter per key: hits in SQLite, and an alarm that forgets the
 * hits that left the window (so idle keys end with no data and no alarm).
 */
export class RateLimiter extends DurableObject<Env> {
  readonly limit: number;
  readonly window: number;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.limit = Number(env.LIMIT);
    this.window = Number(env.WINDOW_MS);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS hits (at INTEGER NOT NULL)");
  }

  async hit(): Promise<{ allowed: boolean; remaining: number }> {
    const now = Date.now();
    const recent = this.ctx.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM hits WHERE at > ?", now - this.window).one().n;
    if (recent >= this.limit) return { allowed: false, remaining: 0 };
    this.ctx.storage.sql.exec("INSERT INTO hits (at) VALUES (?)", now);
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now + this.window);
    return { allowed: true, remaining: this.limit - recent - 1 };
  }

  async alarm(): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM hits WHERE at <= ?", Date.now() - this.window);
    const oldest = this.ctx.storage.sql.exec<{ at: number | null }>("SELECT min(at) AS at FROM hits").one().at;
    if (oldest !== null) await this.ctx.storage.setAlarm(oldest + this.window + 1);
  }

  async stats(): Promise<{ stored: number; alarm: boolean }> {
    const stored = this.ctx.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM hits").one().n;
    return { stored, alarm: (await this.ctx.storage.getAlarm()) !== null };
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const limiter = env.LIMITERS.getByName(url.searchParams.get("key") ?? "anonymous");
    if (url.pathname === "/stats") return Response.json(await limiter.stats());
    const result = await limiter.hit();
    return Response.json(result, { status: result.allowed ? 200 : 429 });
  },
} satisfies ExportedHandler<Env>;
