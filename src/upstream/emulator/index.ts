export { apiError, type ApiError, type ApiErrorType, apiErrorStatus, errorBody, type ErrorBody } from './api-error.js';
export {
  type AccountKind,
  type AccountsFile,
  type ConfigError,
  defaultAccountLimits,
  defaultSubscriptionLimits,
  type EmulatorAccount,
  generatedAccounts,
  isServedModel,
  parseAccountsFile,
} from './emulator-config.js';
export { type Emulator, type EmulatorOptions, startEmulator } from './emulator-server.js';
export { type KeyStats, type StatsSnapshot } from './emulator-stats.js';
export { type Fault, type FaultAction, FaultPlan, type FaultPlanError, parseFault, parseFaults } from './fault-plan.js';
export { type AccessTokenLookup, type IssuedTokens, type OAuthAccountConfig, OAuthTokens, type RefreshRefused } from './oauth-tokens.js';
export { type CacheUsage, PromptCache } from './prompt-cache.js';
export { layOutPrompt, type PromptLayout } from './prompt-segments.js';
export { rateLimitHeaders, rfc3339, unifiedHeaders } from './rate-limit-headers.js';
export { type AccountLimits, AccountRateLimiter, type RateLimited, TokenBucket } from './rate-limiter.js';
export { type InvalidRequest, type MessagesRequest, validateCountTokensRequest, validateMessagesRequest } from './request-validation.js';
export { runEmulator, type RunEmulatorOptions } from './run-emulator.js';
export {
  type SubscriptionLimits,
  type SubscriptionState,
  SubscriptionWindows,
  type UnifiedStatus,
  type WindowExhausted,
  type WindowName,
  type WindowState,
  type WindowUnit,
} from './subscription-windows.js';
export { countTextTokens } from './token-count.js';
export { parseTokenRequest, type RefreshRequest, type TokenError } from './token-request.js';
export { generateText, type GeneratedText } from './text-generator.js';
