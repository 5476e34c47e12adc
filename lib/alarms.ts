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

const targets = new Map<number, () => void>();

/**
 * The timer's callback. A throw out of a threadsafe function's callback is fatal to the
 * process, so whatever a due alarm's target throws is reported here instead.
 */
function fireAlarm(key: number): void {
  try {
    targets.get(key)?.();
  } catch (error) {
    console.error("An alarm could not be delivered:", error);
  }
}
let lastKey = 0;
let ready = false;

/** A timer key whose due alarms call `onFire` (on the JS thread). */
export function alarmKey(onFire: () => void): number {
  if (!ready) {
    native.alarmTimerInit(fireAlarm);
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
