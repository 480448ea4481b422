export * from './bounded-counter.js';
export * from './counter-key.js';
export * from './pn-counter.js';
export * from './window.js';
export * from './windowed-counter.js';
