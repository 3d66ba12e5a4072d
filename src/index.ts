/**
 * express-app-tokens: machine-to-machine authentication for Express.
 *
 * @module
 */
export { createAppTokens } from './create-app-tokens.js';
export type { AppTokens, AppsApi, UsersApi } from './create-app-tokens.js';
export type { IssuedPersonalToken } from './core/personal-tokens.js';
export type { RoleDefinition } from './core/roles.js';
export type { ClientKeyView } from './core/client-keys.js';
export type { AddKeyInput } from './core/key-management.js';
export type { AppTokensOptions } from './core/options.js';
export type { AuthInfo, AuthClaims } from './core/access-tokens.js';
export type { TokenResponse } from './core/service.js';
export type {
  AppDetails,
  AppListPage,
  AppListSort,
  ListAppsInput,
  ListEventsInput,
  CreateAppInput,
  CreateTokenInput,
  CreatedApp,
  CreatedKeyApp,
  PageView,
  Principal,
  RegenerateTokenInput,
  UpdateAppInput,
} from './core/management.js';
export type { AuditEvent } from './core/events.js';
export type { AppView, AppListItem, ApiTokenView, IssuedApiToken, LockoutView, TokenSummaryView } from './core/views.js';
export type { AppTokensStrategy, AuthenticateOptions } from './http/bearer.js';
export type { RateLimitOptions } from './http/rate-limit.js';
export type { SecretScanningOptions } from './http/secret-scanning.js';
export type { KeysFetch, KeysFetchResponse } from './core/scanner-keys.js';
export type { LeakFeedback } from './core/leaks.js';
export type { OpenApiDocument } from './http/openapi.js';
export type { ConsoleOptions } from './console/router.js';
export type { SigningAlgorithm } from './core/keys.js';
export type {
  Store,
  AppRecord,
  ApiTokenRecord,
  ApiTokenRevocationReason,
  AppPatch,
  SigningKeyRecord,
  Tombstone,
  TombstoneKind,
  AuditEventRecord,
  AuditEventType,
  Page,
  ReplaceApiTokenInput,
  RateLimiterBackend,
  ChangeListener,
  UsageCount,
  UsageQuery,
  UsageRow,
  UsageTotals,
} from './store.js';
export { ChangeFeed, encodeCursor, decodeCursor, parseListOptions, mergeUsageCounts } from './store.js';
export type { UsageSeries, UsagePoint, UsageSummary, UsageQueryInput } from './core/usage.js';
export type { BearerRefusal } from './core/signals.js';
export * as errors from './core/errors.js';
