/** The console: who is signed in, which screen is shown, and the one secret being shown once. */
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Api, ApiError, type Principal, type Session } from './api.js';
import { AppList } from './AppList.js';
import { AppPage } from './AppPage.js';
import type { ConsoleConfig } from './config.js';
import { ConsoleContext, type Console } from './context.js';
import { CreateApp } from './CreateApp.js';
import type { SecretFile } from './format.js';
import { MyTokens } from './MyTokens.js';
import { grants } from './scopes.js';
import { SecretOnce } from './SecretOnce.js';
import { SignIn } from './SignIn.js';
import { TokenDebugger } from './TokenDebugger.js';
import { ErrorMessage, Loading, messageOf } from './ui.js';

type Route = { screen: 'apps' } | { screen: 'new' } | { screen: 'app'; id: string } | { screen: 'my-tokens' } | { screen: 'debugger' };

function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/';
  if (path === '/apps/new') return { screen: 'new' };
  const app = /^\/apps\/([A-Za-z0-9_-]{1,64})$/.exec(path);
  if (app) return { screen: 'app', id: app[1]! };
  if (path === '/my-tokens') return { screen: 'my-tokens' };
  if (path === '/debugger') return { screen: 'debugger' };
  return { screen: 'apps' };
}

const SCREEN_TITLES: Record<Route['screen'], string> = { apps: 'Apps', new: 'Create app', app: 'App', 'my-tokens': 'My tokens', debugger: 'Token debugger' };

export function App(props: { config: ConsoleConfig }) {
  const { config } = props;
  const api = useMemo(() => new Api(config.apiBase), [config.apiBase]);
  const [principal, setPrincipal] = useState<Principal | null>(null);
  const [signInMessage, setSignInMessage] = useState<string | null>(null);
  const [hostError, setHostError] = useState<string | null>(null);
  const [route, setRoute] = useState<Route>(() => parseRoute(window.location.hash));
  const [secret, setSecret] = useState<{ file: SecretFile; returnTo: string } | null>(null);
  const [status, setStatus] = useState('');
  const expiry = useRef<number | undefined>(undefined);
  const toast = useRef<number | undefined>(undefined);

  const signOut = useCallback(
    (message: string | null) => {
      window.clearTimeout(expiry.current);
      api.session = null;
      setPrincipal(null);
      setSecret(null);
      setSignInMessage(message);
    },
    [api],
  );

  useEffect(() => {
    const onHash = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    api.onUnauthorized = () => {
      if (config.session === 'bearer') signOut('Your session has ended. Sign in again.');
      else setHostError('Your session with this site has ended. Sign in to it again, then reload this page.');
    };
  }, [api, config.session, signOut]);

  // A host session: the host's cookies already say who this is.
  useEffect(() => {
    if (config.session !== 'host') return;
    api.session = { kind: 'host' };
    // Any signed-in user may read its own principal: one without apps:read is named too, and lands on My tokens.
    api.principal().then(setPrincipal, (e: unknown) => {
      setHostError(e instanceof ApiError && e.status === 401 ? 'You are not signed in to this site. Sign in, then reload this page.' : messageOf(e));
    });
  }, [api, config.session]);

  const onSignedIn = useCallback(
    async (session: Session & { kind: 'bearer' }) => {
      api.session = session;
      const me = await api.principal();
      if (!grants(me.scopes, 'apps:read')) {
        api.session = null;
        throw new Error('This app may not manage apps: it needs the scope apps:read (or apps:write).');
      }
      window.clearTimeout(expiry.current);
      // The access token dies at its expiry; so does the session (no refresh: it lives in memory only).
      expiry.current = window.setTimeout(() => signOut('Your session expired. Sign in again.'), Math.max(0, session.expiresAt - Date.now()));
      setSignInMessage(null);
      setPrincipal(me);
    },
    [api, signOut],
  );

  useEffect(() => {
    document.title = `${secret ? 'Save your secret' : SCREEN_TITLES[route.screen]} · ${config.title}`;
  }, [route, secret, config.title]);

  const ctx: Console | null = useMemo(
    () =>
      principal && {
        api,
        config,
        principal,
        canWrite: grants(principal.scopes, 'apps:write'),
        canRead: grants(principal.scopes, 'apps:read'),
        navigate: (hash: string) => {
          if (window.location.hash === hash) setRoute(parseRoute(hash));
          else window.location.hash = hash;
        },
        showSecret: (file: SecretFile, returnTo: string) => setSecret({ file, returnTo }),
        announce: (text: string) => {
          setStatus('');
          window.clearTimeout(toast.current);
          window.setTimeout(() => setStatus(text), 50);
          // Seen, not only heard: the confirmation stays on screen for a few seconds.
          toast.current = window.setTimeout(() => setStatus(''), 6000);
        },
      },
    [api, config, principal],
  );

  const live = (
    <p class={status ? 'toast' : 'visually-hidden'} role="status" aria-live="polite" aria-atomic="true">
      {status}
    </p>
  );

  if (config.session === 'host' && hostError) {
    return (
      <Shell title={config.title}>
        <main id="main" class="main narrow">
          <h1>{config.title}</h1>
          <ErrorMessage>{hostError}</ErrorMessage>
        </main>
      </Shell>
    );
  }
  if (ctx === null) {
    if (config.session === 'host') {
      return (
        <Shell title={config.title}>
          <main id="main" class="main narrow">
            <Loading />
          </main>
        </Shell>
      );
    }
    return (
      <Shell title={config.title}>
        <SignIn api={api} title={config.title} message={signInMessage} onSignedIn={onSignedIn} />
      </Shell>
    );
  }

  const nav = (hash: string, label: string, active: boolean) => (
    <a href={hash} class={active ? 'nav-link active' : 'nav-link'} aria-current={active ? 'page' : undefined}>
      {label}
    </a>
  );

  return (
    <ConsoleContext.Provider value={ctx}>
      <Shell title={config.title}>
        <header class="topbar">
          <div class="topbar-inner">
            <span class="brand">{config.title}</span>
            {!secret && (
              <nav class="nav" aria-label="Console">
                {ctx.canRead && nav('#/', 'Apps', route.screen === 'apps' || route.screen === 'app' || route.screen === 'new')}
                {config.session === 'host' && nav('#/my-tokens', 'My tokens', route.screen === 'my-tokens' || !ctx.canRead)}
                {ctx.canRead && nav('#/debugger', 'Token debugger', route.screen === 'debugger')}
              </nav>
            )}
            <div class="who">
              <span class="muted">
                Tenant <strong>{ctx.principal.tenantId}</strong>
                {ctx.canRead && !ctx.canWrite && <span class="badge">read-only</span>}
              </span>
              {config.session === 'host' && ctx.principal.actorId && (
                <span class="muted">
                  Signed in as <strong>{ctx.principal.actorId}</strong>
                </span>
              )}
              {config.session === 'bearer' && (
                <button type="button" class="button small" onClick={() => signOut('You have signed out.')}>
                  Sign out
                </button>
              )}
            </div>
          </div>
        </header>
        <main id="main" class="main">
          {secret ? (
            <SecretOnce
              file={secret.file}
              onDone={() => {
                const to = secret.returnTo;
                setSecret(null);
                ctx.navigate(to);
              }}
            />
          ) : route.screen === 'new' && ctx.canWrite ? (
            <CreateApp />
          ) : route.screen === 'app' && ctx.canRead ? (
            <AppPage key={route.id} id={route.id} />
          ) : config.session === 'host' && (route.screen === 'my-tokens' || !ctx.canRead) ? (
            <MyTokens />
          ) : route.screen === 'debugger' ? (
            <TokenDebugger />
          ) : (
            <AppList />
          )}
        </main>
        {live}
      </Shell>
    </ConsoleContext.Provider>
  );
}

function Shell(props: { title: string; children: preact.ComponentChildren }) {
  return <div class="shell">{props.children}</div>;
}
