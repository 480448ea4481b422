export { renderReport } from './html-report.js';
export type { ReportOptions } from './html-report.js';
