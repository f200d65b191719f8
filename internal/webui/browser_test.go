package webui_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/testenv"
)

// chromium finds Debian's chromium: BACKFILL_CHROMIUM, /usr/bin/chromium, or on PATH.
func chromium() string {
	if p := os.Getenv("BACKFILL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts a headless chromium with a fresh profile that sends the page's Basic
// credentials with every request, as a browser does once its login prompt was answered.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromium()
	if path == "" {
		testenv.MissingTool(t, "BROWSER TEST SKIPPED: chromium not found (BACKFILL_CHROMIUM, /usr/bin/chromium, chromium or chromium-browser on PATH). "+
			"Install it with `apt-get install -y chromium`; `make test` does that when it runs as root.")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // chromium refuses its sandbox as root, as in CI containers
		chromedp.DisableGPU,
		// Without these, chromium reaches for Google's services and floods a closed network.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Authorization": "Basic " + basic("operator", apitest.Token)},
		})
		return err
	}))
	if err != nil {
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	return ctx
}

// screenshots writes full-page screenshots to the test's temp directory, or to
// BACKFILL_SCREENSHOT_DIR to keep them.
type screenshots struct {
	dir string
	n   int
}

func (s *screenshots) take(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	s.n++
	path := filepath.Join(s.dir, fmt.Sprintf("%02d-%s.png", s.n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestBrowserSavesSettingsAuthenticatesAndWatchesABackfillFinish drives the page as an
// operator does, in a real headless chromium.
func TestBrowserSavesSettingsAuthenticatesAndWatchesABackfillFinish(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	e := setup(t, 400)
	e.StartWorker(t)
	shots := &screenshots{dir: cmp.Or(os.Getenv("BACKFILL_SCREENSHOT_DIR"), t.TempDir())}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			shots.take(t, ctx, "failed")
			t.Fatalf("%s: %v", step, err)
		}
	}
	domains := []string{e.Skilljar.Org().Domains[0].Name, e.Skilljar.Org().Domains[1].Name}

	do("open the page",
		chromedp.Navigate(e.Server.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#auth-status[data-state="disconnected"] #reauth`)),
	)
	shots.take(t, ctx, "disconnected")

	// A refused save shows the reason beside the field.
	do("save settings that contradict themselves",
		chromedp.Click(chromedp.CSS(`#create-contacts`)),
		chromedp.Click(chromedp.CSS(`#save`)),
		chromedp.WaitVisible(chromedp.CSS(`#error-create_contacts`)),
	)
	shots.take(t, ctx, "refused")
	if got, _ := e.Settings.Get(e.Ctx); got.UpdatedAt != nil {
		t.Fatalf("refused settings were saved: %+v", got)
	}

	do("save valid settings and authenticate with Salesforce",
		chromedp.Click(chromedp.CSS(`#create-contacts`)),
		chromedp.Click(chromedp.CSS(`input[name="domains"][value="`+domains[0]+`"]`)),
		chromedp.Click(chromedp.CSS(`input[name="domains"][value="`+domains[1]+`"]`)),
		chromedp.Click(chromedp.CSS(`input[name="environment"][value="production"]`)),
		chromedp.Click(chromedp.CSS(`#save-connect`)),
		// Our connect, the simulator's authorize, our callback, and back to the page.
		chromedp.WaitVisible(chromedp.CSS(`#auth-status[data-state="connected"]`)),
	)
	shots.take(t, ctx, "connected")
	saved, err := e.Settings.Get(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(saved.Domains, slices.Sorted(slices.Values(domains))) || saved.CreateContacts || saved.Environment != "production" {
		t.Fatalf("saved settings %+v, want what was clicked", saved)
	}

	do("start a backfill",
		chromedp.Click(chromedp.CSS(`#start-backfill`)),
		chromedp.WaitVisible(chromedp.CSS(`#notice`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-run]`)),
	)
	// The page must keep itself current without a reload; a reload would lose this mark.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.stillTheSamePage = true`)); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for {
		row, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
			const r = document.querySelector("tr[data-run]");
			return r ? r.dataset.state + " " + r.querySelector(".percent").textContent : "";
		})()`))
		if err != nil {
			shots.take(t, ctx, "failed")
			t.Fatalf("read the runs table: %v (seen %q)", err, seen)
		}
		if len(seen) == 0 || seen[len(seen)-1] != row {
			seen = append(seen, row)
		}
		if row == "succeeded 100%" {
			break
		}
		if strings.HasPrefix(row, "failed") || strings.HasPrefix(row, "cancelled") {
			t.Fatalf("the run ended %q (seen %q)", row, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the runs table showed: %q", seen)
	stayed, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.stillTheSamePage === true`))
	if err != nil || !stayed {
		t.Fatalf("the page reloaded to show progress (%v); it should refresh the table in place", err)
	}
	shots.take(t, ctx, "finished")

	// Follow the run's link by its address: the table refreshes in place every few seconds,
	// and a click could land on a row the refresh has just replaced.
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("a.run-link").href`))
	if err != nil || href == "" {
		shots.take(t, ctx, "failed")
		t.Fatalf("find the run's link: %v", err)
	}
	do("open the run's activity log",
		chromedp.Navigate(href),
		chromedp.WaitVisible(chromedp.CSS(`#activity tr.level-info`)),
	)
	log, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#activity`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"planned", "stream_done", "finished"} {
		if !strings.Contains(log, want) {
			t.Fatalf("activity log lacks %q:\n%s", want, log)
		}
	}
	shots.take(t, ctx, "activity")
}
