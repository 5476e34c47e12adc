// Alarm delivery: keys for the native timer (src/engine/alarms), and Cloudflare's retry
// policy. Which alarm runs when, and what a run does, is in object-runtime.ts.
import { native } from "./native.js";

/** Counted retries after a failed run before the alarm is given up and deleted. */
export const MAX_ALARM_RETRIES = 6;
/** Cloudflare's wall-clock limit for one alarm() run. */
export const ALARM_TIME_LIMIT_MS = 15 * 60 * 1000;

/** The delay before retry number `retryCount + 1`: 2 s × 2^n, plus up to 25% jitter. */
export function retryDelay(retryCount: number, scale = 1): number {
  return 2000 * 2 ** Math.min(retryCount, 9) * (1 + Math.random() * 0.25) * scale;
}

/**
 * What a due alarm starts: its run, which calls `turnEnded` once its handler's first turn
 * has committed. Returns the whole run (settled once its writes are durable),
 * or nothing when no run starts.
 */
type AlarmTarget = (turnEnded: () => void) => Promise<unknown> | void;

const targets = new Map<number, AlarmTarget>();
/** Keys that fell due and wait for a run slot, in the order they fell due. */
const due: number[] = [];
let dueHead = 0;
let running = 0;
/**
 * How many alarm handlers may be in their first turn at once. A turn's writes hold its
 * object's file open until the turn commits (afterwards the commit waits for its fsync
 * without the file), so a burst of due alarms without a bound would open every object's
 * file at once (10,000 alarms: 20,000 descriptors, past the limit). Half the storage's
 * file budget leaves the other half to the objects serving requests meanwhile. Neither how
 * fast the disk syncs nor how long handlers await other I/O holds back when alarms start.
 */
let maxRunning = 0;

/**
 * The timer's callback, with alarms that fell due. A throw out of a threadsafe function's
 * callback is fatal to the process, so whatever a due alarm's target throws is reported
 * here instead.
 */
function fireAlarms(keys: number[]): void {
  for (const key of keys) due.push(key);
  startDue();
}

function startDue(): void {
  while (running < maxRunning && dueHead < due.length) {
    const key = due[dueHead++];
    let slotTaken = true;
    const freeSlot = () => {
      if (!slotTaken) return;
      slotTaken = false;
      running--;
      startDue();
    };
    running++;
    let run: Promise<unknown> | void = undefined;
    try {
      run = targets.get(key)?.(freeSlot);
    } catch (error) {
      console.error("An alarm could not be delivered:", error);
    }
    if (run === undefined) {
      slotTaken = false;
      running--;
      continue;
    }
    run.then(freeSlot, (error: unknown) => {
      console.error("An alarm could not be delivered:", error);
      freeSlot();
    });
  }
  // Drop the keys already taken, once they are most of the array.
  if (dueHead > 1024 && dueHead * 2 > due.length) {
    due.splice(0, dueHead);
    dueHead = 0;
  } else if (dueHead === due.length) {
    due.length = 0;
    dueHead = 0;
  }
}

let lastKey = 0;
let ready = false;

/** A timer key whose due alarms call `onFire` (on the JS thread), a bounded number at a time. */
export function alarmKey(onFire: AlarmTarget): number {
  if (!ready) {
    maxRunning = Math.max(1, Math.floor(native.storageFileBudget() / 2));
    native.alarmTimerInit(fireAlarms);
    ready = true;
  }
  lastKey = lastKey >= 0xffffffff ? 1 : lastKey + 1;
  targets.set(lastKey, onFire);
  return lastKey;
}

/** Sets the key's alarm to fall due at `atMs`, or cancels it (null). */
export function scheduleAlarm(key: number, atMs: number | null): void {
  if (atMs === null) native.alarmTimerCancel(key);
  else native.alarmTimerSchedule(key, atMs);
}

export function releaseAlarmKey(key: number): void {
  native.alarmTimerCancel(key);
  targets.delete(key);
}
