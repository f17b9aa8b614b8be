// Command wagate is a multi-tenant WhatsApp gateway with a GraphQL API.
//
//	wagate                       serve the API (configured by flags or WAGATE_* variables)
//	wagate admin grant <email>   make an existing account a platform super admin
//	wagate admin revoke <email>  take the super admin flag away again
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	entdialect "entgo.io/ent/dialect"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/user"
	"github.com/wagate/wagate/graph"
	"github.com/wagate/wagate/internal/auth"
	"github.com/wagate/wagate/internal/clientip"
	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/httpapi"
	"github.com/wagate/wagate/internal/mail"
	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/internal/ratelimit"
	"github.com/wagate/wagate/internal/reqlog"
	"github.com/wagate/wagate/internal/sessions"
	"github.com/wagate/wagate/internal/tenancy"
	"github.com/wagate/wagate/internal/viewer"
	"github.com/wagate/wagate/internal/webhook"
	"github.com/wagate/wagate/internal/whatsapp"
	"github.com/wagate/wagate/internal/whatsapp/sandbox"
	"github.com/wagate/wagate/internal/whatsapp/whatsmeow"
	"github.com/wagate/wagate/internal/wsgorilla"
)

// config is every setting; each flag has a WAGATE_* (or DATABASE_URL) variable twin, and
// the README lists them all.
type config struct {
	addr            string
	databaseURL     string
	dataDir         string
	superAdmins     string
	tokenTTL        time.Duration
	introspection   bool
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
	dbMaxConns      int
	dbStmtCache     int
	ingestLanes     int
	smtpURL         string
	invitationTTL   time.Duration
	invitationURL   string
	verificationURL string
	allowedOrigins  string
	sandbox         bool
	whatsapp        bool
	waVersion       string
	waLookupVersion bool
	waDeviceName    string
	sandboxPairIn   time.Duration
	sendPerMinute   int
	maxMediaBytes   int64
	secretKey       string
	webhookPrivate  bool
	webhookWorkers  int
	webhookTimeout  time.Duration
	wsWriteTimeout  time.Duration
	metricsAddr     string
	metricsToken    string
	maxComplexity   int
	maxDepth        int
	apqCacheSize    int
	maxBodyBytes    int64
	loginRateIP     string
	loginRateAcct   string
	trustedProxies  string
	authCacheTTL    time.Duration
	authCacheSize   int
	// Parsed from the strings above.
	loginLimits auth.LoginLimits
	proxies     clientip.Trusted
}

func parseConfig(args []string) (config, []string, error) {
	var c config
	fs := flag.NewFlagSet("wagate", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", env("WAGATE_ADDR", ":8080"), "listen address (WAGATE_ADDR)")
	fs.StringVar(&c.databaseURL, "database-url", env("DATABASE_URL", ""), "postgres://… URL; empty means SQLite under -data-dir (DATABASE_URL)")
	fs.StringVar(&c.dataDir, "data-dir", env("WAGATE_DATA_DIR", "data"), "directory of the embedded SQLite database (WAGATE_DATA_DIR)")
	fs.StringVar(&c.superAdmins, "super-admins", env("WAGATE_SUPER_ADMINS", ""), "comma-separated e-mails of existing accounts made super admins at start-up (WAGATE_SUPER_ADMINS)")
	fs.DurationVar(&c.tokenTTL, "token-ttl", envDuration("WAGATE_TOKEN_TTL", 30*24*time.Hour), "lifetime of session tokens (WAGATE_TOKEN_TTL)")
	fs.BoolVar(&c.introspection, "introspection", envBool("WAGATE_INTROSPECTION", true), "serve GraphiQL and allow schema introspection (WAGATE_INTROSPECTION)")
	fs.StringVar(&c.logLevel, "log-level", env("WAGATE_LOG_LEVEL", "info"), "debug, info, warn or error (WAGATE_LOG_LEVEL)")
	fs.StringVar(&c.logFormat, "log-format", env("WAGATE_LOG_FORMAT", "text"), "text or json (WAGATE_LOG_FORMAT)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", envDuration("WAGATE_SHUTDOWN_TIMEOUT", 15*time.Second), "how long to drain requests on SIGINT/SIGTERM (WAGATE_SHUTDOWN_TIMEOUT)")
	fs.IntVar(&c.dbMaxConns, "db-max-conns", envInt("WAGATE_DB_MAX_CONNS", 20), "PostgreSQL connection pool size (WAGATE_DB_MAX_CONNS)")
	fs.IntVar(&c.dbStmtCache, "db-statement-cache", envInt("WAGATE_DB_STATEMENT_CACHE", 256), "prepared statements kept per PostgreSQL connection, 0 = none (WAGATE_DB_STATEMENT_CACHE)")
	fs.IntVar(&c.ingestLanes, "ingest-lanes", envInt("WAGATE_INGEST_LANES", 2), "transactions that may store reported WhatsApp events at once, each for its share of the organizations; PostgreSQL only (WAGATE_INGEST_LANES)")
	fs.StringVar(&c.smtpURL, "smtp-url", env("WAGATE_SMTP_URL", ""), "smtp://user:pass@host:587?from=… or smtps://…; empty logs e-mails instead (WAGATE_SMTP_URL)")
	fs.DurationVar(&c.invitationTTL, "invitation-ttl", envDuration("WAGATE_INVITATION_TTL", 7*24*time.Hour), "how long an invitation stays valid (WAGATE_INVITATION_TTL)")
	fs.StringVar(&c.invitationURL, "invitation-url", env("WAGATE_INVITATION_URL", tenancy.DefaultInvitationURL), "link e-mailed to invitees; {token} is replaced (WAGATE_INVITATION_URL)")
	fs.StringVar(&c.verificationURL, "verification-url", env("WAGATE_VERIFICATION_URL", tenancy.DefaultVerificationURL), "link that confirms an e-mail address; {token} is replaced (WAGATE_VERIFICATION_URL)")
	fs.StringVar(&c.allowedOrigins, "allowed-origins", env("WAGATE_ALLOWED_ORIGINS", ""), "comma-separated origins (https://app.example.com) allowed to open WebSockets besides the server's own; * for any (WAGATE_ALLOWED_ORIGINS)")
	fs.BoolVar(&c.whatsapp, "whatsapp", envBool("WAGATE_WHATSAPP", true), "enable the WHATSAPP engine (whatsmeow; linked devices of real phones) (WAGATE_WHATSAPP)")
	fs.StringVar(&c.waVersion, "wa-version", env("WAGATE_WA_VERSION", ""), "pin the WhatsApp Web version announced to WhatsApp, e.g. 2.3000.1031080782, when it rejects the built-in one as outdated (WAGATE_WA_VERSION)")
	fs.BoolVar(&c.waLookupVersion, "wa-lookup-version", envBool("WAGATE_WA_LOOKUP_VERSION", true), "look up the current WhatsApp Web version before the first connect (WAGATE_WA_LOOKUP_VERSION)")
	fs.StringVar(&c.waDeviceName, "wa-device-name", env("WAGATE_WA_DEVICE_NAME", "wagate"), "name phones show under Linked devices (WAGATE_WA_DEVICE_NAME)")
	fs.BoolVar(&c.sandbox, "sandbox", envBool("WAGATE_SANDBOX", true), "enable the SANDBOX engine, a virtual WhatsApp network for demos and tests (WAGATE_SANDBOX)")
	fs.DurationVar(&c.sandboxPairIn, "sandbox-pair-after", envDuration("WAGATE_SANDBOX_PAIR_AFTER", 5*time.Second), "how long a sandbox session shows QR codes before its virtual phone scans one (WAGATE_SANDBOX_PAIR_AFTER)")
	fs.IntVar(&c.sendPerMinute, "send-per-minute", envInt("WAGATE_SEND_PER_MINUTE", 60), "messages a session may send per minute before RATE_LIMITED (WAGATE_SEND_PER_MINUTE)")
	fs.Int64Var(&c.maxMediaBytes, "max-media-bytes", int64(envInt("WAGATE_MAX_MEDIA_BYTES", 16<<20)), "largest attachment accepted by sendMessage (WAGATE_MAX_MEDIA_BYTES)")
	fs.StringVar(&c.secretKey, "secret-key", env("WAGATE_SECRET_KEY", ""), "base64 of 32 random bytes that encrypt webhook signing secrets at rest; empty means a key generated into -data-dir (WAGATE_SECRET_KEY)")
	fs.BoolVar(&c.webhookPrivate, "webhook-allow-private", envBool("WAGATE_WEBHOOK_ALLOW_PRIVATE", false), "let webhooks reach loopback, private, link-local and metadata addresses: development only (WAGATE_WEBHOOK_ALLOW_PRIVATE)")
	fs.IntVar(&c.webhookWorkers, "webhook-workers", envInt("WAGATE_WEBHOOK_WORKERS", 4), "webhook deliveries attempted at once by this replica; 0 sends none (WAGATE_WEBHOOK_WORKERS)")
	fs.DurationVar(&c.webhookTimeout, "webhook-timeout", envDuration("WAGATE_WEBHOOK_TIMEOUT", 10*time.Second), "how long a webhook endpoint has to answer (WAGATE_WEBHOOK_TIMEOUT)")
	fs.DurationVar(&c.wsWriteTimeout, "ws-write-timeout", envDuration("WAGATE_WS_WRITE_TIMEOUT", 10*time.Second), "a WebSocket subscriber that cannot take a frame for this long is disconnected as a slow consumer (WAGATE_WS_WRITE_TIMEOUT)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", env("WAGATE_METRICS_ADDR", ""), "serve /metrics on this address instead of the main one, e.g. 127.0.0.1:9090 (WAGATE_METRICS_ADDR)")
	fs.StringVar(&c.metricsToken, "metrics-token", env("WAGATE_METRICS_TOKEN", ""), "bearer token that /metrics requires; empty means none (WAGATE_METRICS_TOKEN)")
	fs.IntVar(&c.maxComplexity, "max-complexity", envInt("WAGATE_MAX_COMPLEXITY", graph.DefaultMaxComplexity), "largest cost of one GraphQL operation, about the objects it may load; 0 means no limit (WAGATE_MAX_COMPLEXITY)")
	fs.IntVar(&c.maxDepth, "max-depth", envInt("WAGATE_MAX_DEPTH", graph.DefaultMaxDepth), "deepest nesting of a GraphQL operation's selections; 0 means no limit (WAGATE_MAX_DEPTH)")
	fs.IntVar(&c.apqCacheSize, "apq-cache-size", envInt("WAGATE_APQ_CACHE_SIZE", graph.DefaultAPQCacheSize), "automatic persisted queries remembered by this process; 0 turns them off (WAGATE_APQ_CACHE_SIZE)")
	fs.Int64Var(&c.maxBodyBytes, "max-body-bytes", int64(envInt("WAGATE_MAX_BODY_BYTES", 1<<20)), "largest request body, attachments aside (WAGATE_MAX_BODY_BYTES)")
	fs.StringVar(&c.loginRateIP, "login-rate-ip", env("WAGATE_LOGIN_RATE_IP", auth.DefaultLoginLimits.PerIP.String()), "log-in and sign-up attempts per client address, as N/duration, or off (WAGATE_LOGIN_RATE_IP)")
	fs.StringVar(&c.loginRateAcct, "login-rate-account", env("WAGATE_LOGIN_RATE_ACCOUNT", auth.DefaultLoginLimits.PerAccount.String()), "failed log-ins per e-mail address, as N/duration, or off (WAGATE_LOGIN_RATE_ACCOUNT)")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", env("WAGATE_TRUSTED_PROXIES", ""), "comma-separated addresses or CIDR prefixes of proxies whose X-Forwarded-For names the client (WAGATE_TRUSTED_PROXIES)")
	fs.DurationVar(&c.authCacheTTL, "auth-cache-ttl", envDuration("WAGATE_AUTH_CACHE_TTL", auth.DefaultCacheTTL), "longest a replica reuses a resolved credential: changes made through wagate apply at once, direct database edits within this; 0 turns the cache off (WAGATE_AUTH_CACHE_TTL)")
	fs.IntVar(&c.authCacheSize, "auth-cache-size", envInt("WAGATE_AUTH_CACHE_SIZE", auth.DefaultCacheSize), "resolved credentials this process remembers; 0 turns the cache off (WAGATE_AUTH_CACHE_SIZE)")
	if err := fs.Parse(args); err != nil {
		return c, nil, err
	}
	var err error
	if c.loginLimits.PerIP, err = ratelimit.ParseRate(c.loginRateIP); err != nil {
		return c, nil, fmt.Errorf("login-rate-ip: %w", err)
	}
	if c.loginLimits.PerAccount, err = ratelimit.ParseRate(c.loginRateAcct); err != nil {
		return c, nil, fmt.Errorf("login-rate-account: %w", err)
	}
	if c.proxies, err = clientip.ParseTrusted(c.trustedProxies); err != nil {
		return c, nil, err
	}
	if c.maxComplexity < 0 || c.maxDepth < 0 || c.apqCacheSize < 0 || c.maxBodyBytes <= 0 {
		return c, nil, fmt.Errorf("complexity, depth and APQ cache size must be ≥ 0 and the body size positive")
	}
	if c.authCacheTTL < 0 || c.authCacheSize < 0 {
		return c, nil, fmt.Errorf("the auth cache TTL and size must be ≥ 0, got %s and %d", c.authCacheTTL, c.authCacheSize)
	}
	if c.dbStmtCache < 0 {
		return c, nil, fmt.Errorf("the statement cache size must be ≥ 0, got %d", c.dbStmtCache)
	}
	if c.ingestLanes < 1 {
		return c, nil, fmt.Errorf("ingest lanes must be ≥ 1, got %d", c.ingestLanes)
	}
	if c.webhookWorkers < 0 || c.webhookTimeout <= 0 {
		return c, nil, fmt.Errorf("webhook workers must be ≥ 0 and the timeout positive, got %d and %s", c.webhookWorkers, c.webhookTimeout)
	}
	if c.tokenTTL <= 0 || c.invitationTTL <= 0 {
		return c, nil, fmt.Errorf("token and invitation TTLs must be positive, got %s and %s", c.tokenTTL, c.invitationTTL)
	}
	for _, u := range []string{c.invitationURL, c.verificationURL} {
		if !strings.Contains(u, "{token}") {
			return c, nil, fmt.Errorf("link templates must contain {token}, got %q", u)
		}
	}
	return c, fs.Args(), nil
}

func (c config) dsn() string {
	if c.databaseURL != "" {
		return c.databaseURL
	}
	return database.SQLiteDSN(c.dataDir)
}

// offIfZero turns a setting's 0 ("no limit", "off") into the -1 that says so to
// graph.Limits and auth.Config, where 0 means the default.
func offIfZero[T int | time.Duration](n T) T {
	if n == 0 {
		return -1
	}
	return n
}

// splitList splits a comma-separated setting, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// The typed readers fall back to the default on malformed values, and flag parsing then
// reports nothing: so they are validated here, loudly, at start-up.
func envDuration(key string, def time.Duration) time.Duration {
	v := env(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		fatalf("%s: %v", key, err)
	}
	return d
}

func envBool(key string, def bool) bool {
	v := env(key, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		fatalf("%s: %v", key, err)
	}
	return b
}

// statementCache maps the setting (0 = off) onto database.Options (0 = default, < 0 = off).
func statementCache(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func envInt(key string, def int) int {
	v := env(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		fatalf("%s: %v", key, err)
	}
	return n
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "wagate: "+format+"\n", args...)
	os.Exit(2)
}

func newLogger(c config) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	// Lines logged with a request's context carry its request_id.
	switch c.logFormat {
	case "json":
		return slog.New(reqlog.Handler(slog.NewJSONHandler(os.Stderr, opts))), nil
	case "text":
		return slog.New(reqlog.Handler(slog.NewTextHandler(os.Stderr, opts))), nil
	}
	return nil, fmt.Errorf("log format must be text or json, got %q", c.logFormat)
}

func main() {
	cfg, args, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fatalf("%v", err)
	}
	log, err := newLogger(cfg)
	if err != nil {
		fatalf("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case len(args) == 0:
		err = serve(ctx, cfg, log)
	case args[0] == "admin":
		err = adminCommand(ctx, cfg, args[1:])
	default:
		err = fmt.Errorf("unknown command %q (want: admin grant|revoke <email>)", args[0])
	}
	if err != nil {
		log.Error("wagate failed", "err", err)
		os.Exit(1)
	}
}

// openDB opens and migrates the database; more are further migrations to run under the same
// lock (the WhatsApp device store), which get the open database.
func openDB(ctx context.Context, cfg config, more ...func(context.Context, *database.DB) error) (*database.DB, error) {
	db, err := database.Open(ctx, cfg.dsn(), database.Options{MaxOpenConns: cfg.dbMaxConns, StatementCache: statementCache(cfg.dbStmtCache)})
	if err != nil {
		return nil, err
	}
	steps := make([]func(context.Context) error, len(more))
	for i, m := range more {
		steps[i] = func(ctx context.Context) error { return m(ctx, db) }
	}
	if err := db.Migrate(ctx, steps...); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// whatsappEngine opens the whatsmeow device store in the database, during migration.
func whatsappEngine(cfg config, log *slog.Logger, out **whatsmeow.Engine) func(context.Context, *database.DB) error {
	return func(ctx context.Context, db *database.DB) error {
		dialect := "sqlite"
		if db.Dialect == entdialect.Postgres {
			dialect = "postgres"
		}
		e, err := whatsmeow.New(ctx, db.SQL, dialect, whatsmeow.Options{
			Log: log, WAVersion: cfg.waVersion, LookupVersion: cfg.waLookupVersion, DeviceName: cfg.waDeviceName,
		})
		*out = e
		return err
	}
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	var wa *whatsmeow.Engine
	var more []func(context.Context, *database.DB) error
	if cfg.whatsapp {
		more = append(more, whatsappEngine(cfg, log, &wa))
	}
	if database.IsPostgres(cfg.dsn()) && cfg.secretKey == "" {
		// A key generated into each replica's data directory would differ between replicas,
		// and none could sign the webhooks created on another.
		return errors.New("WAGATE_SECRET_KEY is required with PostgreSQL: set it to the same base64 key " +
			"(openssl rand -base64 32) on every replica")
	}
	db, err := openDB(ctx, cfg, more...)
	if err != nil {
		return err
	}
	defer db.Close()
	log.Info("database ready", "dialect", db.Dialect)

	if err := grantConfiguredSuperAdmins(ctx, db, cfg.superAdmins, log); err != nil {
		return err
	}
	authn, err := auth.New(db.Client, auth.Config{TokenTTL: cfg.tokenTTL, Log: log, LoginLimits: cfg.loginLimits,
		CacheTTL: offIfZero(cfg.authCacheTTL), CacheSize: offIfZero(cfg.authCacheSize)})
	if err != nil {
		return err
	}
	authn.WatchChanges(db.Client)
	// Maintenance stops when serve returns, and writes API key usage one last time before the
	// database closes.
	maintenanceCtx, stopMaintenance := context.WithCancel(ctx)
	maintenance := make(chan struct{})
	go func() { defer close(maintenance); authn.RunMaintenance(maintenanceCtx, 30*time.Second, log) }()
	defer func() { stopMaintenance(); <-maintenance }()

	var sender mail.Sender = mail.Log{Logger: log}
	if cfg.smtpURL != "" {
		if sender, err = mail.ParseSMTPURL(cfg.smtpURL); err != nil {
			return err
		}
	}
	outbox := mail.NewOutbox(sender, log)
	defer outbox.Close()

	var engines []whatsapp.Engine
	if wa != nil {
		engines = append(engines, wa)
	}
	var sandboxNet *sandbox.Network
	if cfg.sandbox {
		sandboxNet = sandbox.New(sandbox.Options{PairAfter: cfg.sandboxPairIn})
		defer sandboxNet.Close()
		engines = append(engines, sandboxNet)
	}
	keys, _, err := webhook.LoadKeyring(cfg.secretKey, cfg.dataDir)
	if err != nil {
		return fmt.Errorf("WAGATE_SECRET_KEY: %w", err)
	}
	if cfg.webhookPrivate {
		log.Warn("WAGATE_WEBHOOK_ALLOW_PRIVATE is on: webhooks may reach this server's own network")
	}
	metricsReg := metrics.New()
	webhooks := webhook.New(db.Client, webhook.Options{Keys: keys, AllowPrivate: cfg.webhookPrivate, Log: log, Metrics: metricsReg})
	eventLog := events.New(db.Client, log)
	eventLog.WatchAccess(db.Client)
	eventLog.Metrics = metricsReg
	var node *cluster.Node
	var replicas *whatsapp.Cluster
	if db.Dialect == entdialect.Postgres {
		// Replicas on one PostgreSQL share sessions and wake each other's subscribers.
		node = cluster.Join(db.DSN, db.SQL, log)
		defer node.Close()
		if err := eventLog.Distribute(node.Bus); err != nil {
			return err
		}
		if err := authn.Distribute(node.Bus); err != nil {
			return err
		}
		if err := webhooks.Distribute(node.Bus); err != nil {
			return err
		}
		replicas = &whatsapp.Cluster{Bus: node.Bus, Locks: node.Locks}
	}
	eventLog.Webhooks = webhooks
	var worker *webhook.Worker
	if cfg.webhookWorkers > 0 {
		worker = webhooks.NewWorker(webhook.WorkerOptions{Dialect: db.Dialect, Concurrency: cfg.webhookWorkers, Timeout: cfg.webhookTimeout})
		worker.Start()
		// Runs before the database closes; the shutdown path below stops it first.
		defer worker.Stop(context.Background())
	}
	ingestLanes := cfg.ingestLanes
	if db.Dialect != entdialect.Postgres {
		ingestLanes = 1 // SQLite: one writer at a time
	}
	manager := whatsapp.NewManager(db.Client, engines, whatsapp.ManagerOptions{Log: log, StartJitter: 2 * time.Second,
		Events: eventLog, Cluster: replicas, IngestLanes: ingestLanes, BulkInbound: db.Dialect == entdialect.Postgres})
	defer manager.Stop()
	if err := manager.Start(ctx); err != nil {
		return err
	}

	limits := graph.Limits{MaxComplexity: offIfZero(cfg.maxComplexity), MaxDepth: offIfZero(cfg.maxDepth),
		APQCacheSize: offIfZero(cfg.apqCacheSize)}
	handler := httpapi.New(httpapi.Config{
		Introspection:         cfg.introspection,
		AllowedOrigins:        splitList(cfg.allowedOrigins),
		TrustedProxies:        cfg.proxies,
		MaxBodyBytes:          cfg.maxBodyBytes,
		Limits:                limits,
		WebSocketWriteTimeout: cfg.wsWriteTimeout,
		Tenancy: tenancy.Options{InvitationTTL: cfg.invitationTTL, InvitationURL: cfg.invitationURL,
			VerificationURL: cfg.verificationURL, Mail: outbox, Log: log},
		Sessions:         sessions.Options{SendPerMinute: cfg.sendPerMinute, MaxMediaBytes: cfg.maxMediaBytes},
		MetricsToken:     cfg.metricsToken,
		MetricsElsewhere: cfg.metricsAddr != "",
	}, httpapi.Deps{Client: db.Client, SQL: db.SQL, Auth: authn, Log: log, Manager: manager, Sandbox: sandboxNet, Events: eventLog, Cluster: node,
		Webhooks: webhooks, Metrics: metricsReg})
	if cfg.metricsAddr != "" {
		stopMetrics, err := serveMetrics(cfg, metricsReg, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	// Long-lived connections (subscriptions) derive from baseCtx, so cancelling it after
	// Shutdown ends them: http.Server.Shutdown does not close hijacked connections. Marked as
	// their lifetime, it lets them leave net/http's goroutines (see wsgorilla.Reap).
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{
		Addr:              cfg.addr,
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return wsgorilla.Lifetime(baseCtx) },
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.addr, err)
	}
	log.Info("wagate listening", "addr", ln.Addr().String(), "graphiql", cfg.introspection)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	cancelBase()
	if worker != nil {
		// Attempts in flight finish within the remaining time, or are released for the
		// next start (or another replica) to make again.
		worker.Stop(shutdownCtx)
	}
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	log.Info("stopped")
	return nil
}

// serveMetrics serves /metrics alone on WAGATE_METRICS_ADDR, e.g. on an address only the
// scraper reaches; the returned function stops it.
func serveMetrics(cfg config, m *metrics.Metrics, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", cfg.metricsAddr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s (WAGATE_METRICS_ADDR): %w", cfg.metricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler(cfg.metricsToken, log))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serving metrics", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// grantConfiguredSuperAdmins applies WAGATE_SUPER_ADMINS to accounts that exist. It never
// creates accounts: an address nobody has signed up with yet gets nothing, so signing up
// with a listed address later does not make anyone an admin before the next start-up.
func grantConfiguredSuperAdmins(ctx context.Context, db *database.DB, list string, log *slog.Logger) error {
	for _, email := range splitList(list) {
		email = strings.ToLower(email)
		n, err := setSuperAdmin(ctx, db, email, true)
		if err != nil {
			return err
		}
		if n == 0 {
			log.Warn("WAGATE_SUPER_ADMINS names an e-mail with no account; sign up first", "email", email)
		}
	}
	return nil
}

func setSuperAdmin(ctx context.Context, db *database.DB, email string, on bool) (int, error) {
	var n int
	err := database.InTx(ctx, db.Client, func(ctx context.Context, c *ent.Client) error {
		var err error
		n, err = c.User.Update().Where(user.Email(strings.ToLower(email))).
			SetIsSuperAdmin(on).Save(viewer.System(ctx, "operator"))
		if err != nil || n == 0 || db.Dialect != entdialect.Postgres {
			return err
		}
		// Running replicas may have cached the account: they forget it at commit. A server
		// on SQLite has no bus to hear it on, and sees the change within its cache TTL.
		return auth.NotifyChanged(ctx, c)
	})
	if err != nil {
		return 0, fmt.Errorf("updating %s: %w", email, err)
	}
	return n, nil
}

func adminCommand(ctx context.Context, cfg config, args []string) error {
	if len(args) != 2 || (args[0] != "grant" && args[0] != "revoke") {
		return errors.New("usage: wagate admin grant|revoke <email>")
	}
	db, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := setSuperAdmin(ctx, db, args[1], args[0] == "grant")
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("no account with e-mail %s", args[1])
	}
	fmt.Printf("%s: super admin %s\n", args[1], map[bool]string{true: "granted", false: "revoked"}[args[0] == "grant"])
	return nil
}
