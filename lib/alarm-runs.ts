// Alarm runs of one object: when its stored alarm is scheduled, how a due alarm runs (as an
// event of the object, one at a time), and Cloudflare's retry policy after a failed run.
import { MAX_ALARM_RETRIES, retryDelay } from "./alarms.js";
import type { Commits } from "./commits.js";
import { runtimeError } from "./errors.js";
import type { DurableObjectId } from "./namespace.js";
import { native } from "./native.js";

/** What alarm runs need from their object (see object-runtime.ts). */
export interface AlarmHost {
  readonly id: DurableObjectId;
  /** The current storage handle and output gate (a reset replaces both). */
  readonly handle: number;
  readonly commits: Commits;
  /** Bumped by every reset. */
  readonly generation: number;
  /** The object's storage is closed. */
  readonly shut: boolean;
  /** Runs `handler` as an event of the object; resolves once its writes are durable. */
  deliver<T>(handler: (instance: object) => unknown): Promise<T>;
  reset(reason: unknown): void;
}

export interface AlarmLimits {
  /** Multiplies the retry delays (tests shorten Cloudflare's 2 s × 2^n). */
  alarmRetryScale: number;
  /** ms one alarm() run may take (Cloudflare: 15 minutes). */
  alarmTimeLimit: number;
}

/** The state of an alarm() run in progress. */
interface AlarmRun {
  /** The stored time that fell due. */
  scheduled: number;
  /** setAlarm() or deleteAlarm() was called since the run started. */
  changed: boolean;
}

const SKIPPED = Symbol("no alarm was due");
const noop = () => {};

export class AlarmRuns {
  readonly #host: AlarmHost;
  readonly #limits: AlarmLimits;
  /** Sets when the alarm falls due (null: none); the registry's timer then calls run(). */
  readonly #schedule: (atMs: number | null) => void;
  #run: AlarmRun | undefined;
  /** Counted retries of the current alarm so far. */
  #retries = 0;
  /** A due alarm came while a run was in progress: look again when it ends. */
  #again = false;
  /** ctx.abort(reason, { retryAlarm: false }) during a run. */
  #noRetry = false;
  #syncPending = false;

  constructor(host: AlarmHost, limits: AlarmLimits, schedule: (atMs: number | null) => void) {
    this.#host = host;
    this.#limits = limits;
    this.#schedule = schedule;
  }

  /** ctx.abort(…, { retryAlarm: false }): the run in progress is not retried. */
  noRetry(): void {
    if (this.#run !== undefined) this.#noRetry = true;
  }

  /** setAlarm(), deleteAlarm() or deleteAll() was called: reschedule once it is durable. */
  changed(): void {
    if (this.#run !== undefined) this.#run.changed = true;
    this.#retries = 0;
    if (this.#syncPending) return;
    this.#syncPending = true;
    const sync = () => {
      this.#syncPending = false;
      this.scheduleStored();
    };
    const gate = this.#host.commits.whenDurable();
    if (gate === undefined) queueMicrotask(sync);
    else gate.then(sync, () => (this.#syncPending = false));
  }

  /** getAlarm() answers null while alarm() runs, unless the alarm was set again. */
  get hidden(): boolean {
    return this.#run !== undefined && !this.#run.changed;
  }

  /** Schedules the stored alarm (or cancels the timer when there is none). */
  scheduleStored(): void {
    if (this.#host.shut) return;
    // The running alarm's own time is not rescheduled: the run decides what follows it.
    if (this.#run !== undefined && !this.#run.changed) return;
    let time: number | null;
    try {
      time = native.alarmGet(this.#host.handle);
    } catch {
      return;
    }
    this.#schedule(time);
  }

  /**
   * The timer says this object's alarm is due: run alarm() as an event (constructing the
   * object first if it was evicted), one run at a time, with Cloudflare's retries. Settles
   * (never rejects) once the run is over and its writes are durable, or at once when no run
   * starts. `turnEnded` is called once, when the handler's first turn has committed (the
   * handler returned, or awaits something: its writes so far no longer hold the object's
   * file open), or when the run ends without one.
   */
  run(turnEnded: () => void = noop): Promise<void> {
    let ended = false;
    const endTurn = () => {
      if (ended) return;
      ended = true;
      turnEnded();
    };
    // Turns commit in a setImmediate callback (commits.ts) queued before this one.
    const endTurnAfterCommit = () => void setImmediate(endTurn);
    if (this.#host.shut) return Promise.resolve().then(endTurn);
    if (this.#run !== undefined) {
      this.#again = true;
      return Promise.resolve().then(endTurn);
    }
    const retryCount = this.#retries;
    const run: AlarmRun = { scheduled: 0, changed: false };
    this.#run = run;
    this.#noRetry = false;
    const outcome = this.#host.deliver<unknown>((instance) => {
      const scheduled = native.alarmGet(this.#host.handle);
      if (scheduled === null || scheduled > Date.now()) {
        endTurn();
        return SKIPPED;
      }
      run.scheduled = scheduled;
      const handler = (instance as { alarm?: (info: unknown) => unknown }).alarm;
      if (typeof handler !== "function") throw new TypeError("Your Durable Object class must have an alarm() handler.");
      const generation = this.#host.generation;
      // Done: the alarm is deleted in the same turn that ends the run, so it commits
      // together with the run's last writes (after the earlier ones): the run's writes
      // are durable before the alarm is gone, and a crash keeps both or neither.
      const done = () => {
        if (run.changed || generation !== this.#host.generation) return;
        if (native.alarmGet(this.#host.handle) !== scheduled) return;
        this.#host.commits.wrote();
        native.alarmSet(this.#host.handle, null);
      };
      const result = this.#withinTimeLimit(handler.call(instance, { retryCount, isRetry: retryCount > 0, scheduledTime: scheduled }));
      // The handler's first turn is over (an async one awaits something now).
      endTurnAfterCommit();
      if (result instanceof Promise) return result.then(done);
      done();
      return result;
    });
    return outcome.then(
      (result) => {
        endTurn();
        this.#run = undefined;
        if (result === SKIPPED) {
          this.scheduleStored(); // deleted, or moved to a later time
          this.#forgetIfNone();
        } else {
          // Done, and durable (the event waited for the commit that deleted the alarm).
          this.#retries = 0;
          this.#forgetIfNone();
          if (run.changed) this.scheduleStored();
        }
        this.#afterRun();
      },
      (error) => {
        endTurn();
        this.#run = undefined;
        if (run.changed || this.#noRetry || this.#host.shut) {
          // A new alarm set during the failing run supersedes the retry; so does abort({ retryAlarm: false }).
          this.#retries = 0;
          if (!run.changed && run.scheduled !== 0) this.#deleteFired(run.scheduled);
          else this.scheduleStored();
        } else if (retryCount >= MAX_ALARM_RETRIES) {
          this.#retries = 0;
          this.#deleteFired(run.scheduled);
          process.emitWarning(`alarm() of Durable Object ${this.#host.id} failed ${retryCount + 1} times and was given up: ${String(error)}`);
        } else {
          // The alarm stays set (getAlarm() still shows it) until the retry runs.
          this.#retries = retryCount + 1;
          this.#schedule(Date.now() + retryDelay(retryCount, this.#limits.alarmRetryScale));
        }
        this.#afterRun();
      },
    );
  }

  #afterRun(): void {
    if (!this.#again) return;
    this.#again = false;
    this.scheduleStored();
  }

  /** Deletes the alarm that ran, unless something replaced it meanwhile. */
  #deleteFired(scheduled: number): void {
    this.#host.deliver(() => {
      if (native.alarmGet(this.#host.handle) !== scheduled) return;
      this.#host.commits.wrote();
      native.alarmSet(this.#host.handle, null);
    }).then(() => this.#forgetIfNone(), noop);
  }

  /** Once the object is known (durably) to have no alarm, the namespace index forgets it. */
  #forgetIfNone(): void {
    if (this.#host.shut) return;
    try {
      if (native.alarmGet(this.#host.handle) === null) native.alarmForget(this.#host.handle);
    } catch {
      // The index is a hint: a stale row costs one look at the object after a restart.
    }
  }

  /** Cloudflare stops an alarm() run after 15 minutes: the object is reset and the run retried. */
  #withinTimeLimit(result: unknown): unknown {
    if (!(result instanceof Promise)) return result;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = runtimeError("The alarm() handler exceeded its time limit (15 minutes on Cloudflare); the Durable Object was reset.");
        reject(error);
        this.#host.reset(error);
      }, this.#limits.alarmTimeLimit);
      timer.unref?.();
    });
    return Promise.race([result, limit]).finally(() => clearTimeout(timer));
  }
}
