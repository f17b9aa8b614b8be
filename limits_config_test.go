package main

import (
	"testing"
	"time"

	"github.com/wagate/wagate/internal/auth"
	"github.com/wagate/wagate/internal/ratelimit"
)

func TestParseLimitSettings(t *testing.T) {
	cfg, _, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.loginLimits != auth.DefaultLoginLimits || cfg.maxComplexity != 5000 || cfg.maxDepth != 12 ||
		cfg.apqCacheSize != 1000 || cfg.maxBodyBytes != 1<<20 || len(cfg.proxies) != 0 ||
		cfg.authCacheTTL != auth.DefaultCacheTTL || cfg.authCacheSize != auth.DefaultCacheSize {
		t.Fatalf("defaults: %+v", cfg)
	}
	t.Setenv("WAGATE_LOGIN_RATE_IP", "off")
	t.Setenv("WAGATE_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
	t.Setenv("WAGATE_AUTH_CACHE_SIZE", "500")
	cfg, _, err = parseConfig([]string{"-login-rate-account", "5/1h", "-max-complexity", "0", "-auth-cache-ttl", "0"})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.loginLimits.PerIP.Off() || cfg.loginLimits.PerAccount != (ratelimit.Rate{Burst: 5, Per: time.Hour}) ||
		len(cfg.proxies) != 2 || offIfZero(cfg.maxComplexity) != -1 || offIfZero(cfg.authCacheTTL) != -1 ||
		cfg.authCacheSize != 500 {
		t.Fatalf("settings: %+v", cfg)
	}
	for _, args := range [][]string{
		{"-login-rate-ip", "20"},
		{"-login-rate-account", "ten/15m"},
		{"-trusted-proxies", "proxy.internal"},
		{"-max-depth", "-1"},
		{"-max-body-bytes", "0"},
		{"-auth-cache-ttl", "-1s"},
		{"-auth-cache-size", "-1"},
	} {
		if _, _, err := parseConfig(args); err == nil {
			t.Errorf("accepted %q", args)
		}
	}
}
