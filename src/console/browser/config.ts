/** What the server put in the page (`src/console/router.ts` ConsoleConfig): never a secret. */
export interface ConsoleConfig {
  apiBase: string;
  session: 'host' | 'bearer';
  title: string;
  issuer: string;
  tokenUrl: string;
  scopes: string[];
  apiTokenTtl: { default: number | null; max: number };
}

export function readConfig(): ConsoleConfig {
  const element = document.getElementById('console-config');
  if (!element?.textContent) throw new Error('the console page has no configuration');
  return JSON.parse(element.textContent) as ConsoleConfig;
}
