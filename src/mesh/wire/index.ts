export * from './crc32c.js';
export * from './frame.js';
