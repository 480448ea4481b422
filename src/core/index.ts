export * from './assert.js';
export * from './clock.js';
export * from './duration-text.js';
export * from './ids.js';
export * from './limits.js';
export * from './random.js';
export * from './result.js';
