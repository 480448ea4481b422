/**
 * Time reaches the cores only through this interface (or as a `nowMs` argument). Production wires
 * the system clock in an adapter; the simulator wires a virtual clock it advances itself, which is
 * what makes a run a pure function of its seed.
 */
export interface Clock {
  /** Wall-clock milliseconds since the Unix epoch; may jump, may be skewed between nodes. */
  nowMs(): number;
}

/** A clock that moves only when told to: for tests and the simulator. */
export class ManualClock implements Clock {
  private timeMs: number;

  constructor(startMs = 0) {
    this.timeMs = startMs;
  }

  nowMs(): number {
    return this.timeMs;
  }

  set(timeMs: number): void {
    this.timeMs = timeMs;
  }

  advance(deltaMs: number): void {
    this.timeMs += deltaMs;
  }
}
