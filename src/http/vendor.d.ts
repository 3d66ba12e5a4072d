// Minimal types for passport-http-bearer (its @types package drags in koa's types).
declare module 'passport-http-bearer' {
  import type { Request } from 'express';

  export interface IStrategyOptions {
    realm?: string;
    scope?: string | string[];
    passReqToCallback?: boolean;
  }
  export type VerifyDone = (error: unknown, user?: unknown, info?: string | { message?: string }) => void;

  export class Strategy {
    constructor(options: IStrategyOptions, verify: (req: Request, token: string, done: VerifyDone) => void);
    name: string;
    authenticate(req: Request, options?: unknown): void;
    success(user: unknown, info?: unknown): void;
    fail(challenge?: string | number, status?: number): void;
    error(err: unknown): void;
  }
}
