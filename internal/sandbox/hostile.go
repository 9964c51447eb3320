package sandbox

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Hostile modes make the sandbox misbehave one way at a time, as a broken or hostile server would:
// echo credentials, point links elsewhere, hang, flood, lie about dates and sizes. The tests that hold
// ledgerlake to trusting nothing it reads start a sandbox in each mode, and `extract sandbox --hostile
// MODE` serves one by hand. Each mode touches one endpoint (named in its description); everything else
// answers as usual, so a run shows what one fault does and what it leaves alone.
var hostileModes = map[string]struct {
	about string
	serve func(h *Hostility, w http.ResponseWriter, r *http.Request) bool
}{
	"token-echo-400":   {"the Signicat token endpoint answers 400 echoing the request (form body with the client secret, headers)", tokenEcho(400)},
	"token-echo-401":   {"the Signicat token endpoint answers 401 echoing the request", tokenEcho(401)},
	"token-echo-403":   {"the Signicat token endpoint answers 403 echoing the request", tokenEcho(403)},
	"token-echo-500":   {"the Signicat token endpoint answers 500 echoing the request, every time", tokenEcho(500)},
	"welcome-echo-403": {"GSAPI /welcome answers 403 echoing the Authorization header, as sent and decoded", welcomeEcho(403)},
	"welcome-echo-500": {"GSAPI /welcome answers 500 echoing the Authorization header, every time", welcomeEcho(500)},
	"foreign-next":     {"Signicat /organizations answers with a next link to another host:port (the catcher)", (*Hostility).foreignNext},
	"foreign-redirect": {"GSAPI /users/list redirects to another host:port (the catcher)", (*Hostility).foreignRedirect},
	"redirect-loop":    {"GSAPI /countrycodes/list redirects to itself forever", (*Hostility).redirectLoop},
	"future-invoice":   {"Signicat /invoices lists one more invoice, dated 9999-12-31", extraInvoice("FUTURE-1", "9999-12-31T10:00:00Z")},
	"dotdot-invoice":   {`Signicat /invoices lists one more invoice, numbered ".."`, extraInvoice("..", "")},
	"bad-partition":    {`Signicat /invoices lists one more invoice, dated "/../../xyz-01"`, extraInvoice("BADDATE-1", "/../../xyz-01")},
	"missing-invoice":  {"Signicat /invoices/{n} and its PDF answer 404 for the first invoice asked for", (*Hostility).missingInvoice},
	"null-list":        {"Signicat /organizations answers data: null, GSAPI /organizations/list null", (*Hostility).nullList},
	"null-window":      {"GSAPI /datasync?option=Invoices answers null for every window", (*Hostility).nullWindow},
	"hang-once":        {"the first GSAPI /countrycodes/list request is accepted and never answered", (*Hostility).hangOnce},
	"trickle-once":     {"the first GSAPI /countrycodes/list answer trickles a byte a second (4 KiB of it)", (*Hostility).trickleOnce},
	"retry-after-day":  {"GSAPI /users/list answers 429 with Retry-After: 86400", (*Hostility).retryAfterDay},
	"endless-next":     {"Signicat /contacts answers every page with a new next token", (*Hostility).endlessNext},
	"huge-list":        {"GSAPI /organizations/list answers a list of --hostile-bytes (300 MB by default)", (*Hostility).hugeList},
	"huge-page":        {"Signicat /contacts answers one page of --hostile-bytes (300 MB by default)", (*Hostility).hugePage},
	"huge-value":       {"GSAPI /users/list answers one user whose name is --hostile-bytes long", (*Hostility).hugeValue},
	"huge-pdf":         {"Signicat /invoices/{n}/pdf answers a PDF of --hostile-bytes for the first invoice asked for", (*Hostility).hugePDF},
	"huge-total":       {"GSAPI datatable/list says X-GSAPI-QueryTotalCount: 10^15", (*Hostility).hugeTotal},
	"gzip-bomb":        {"GSAPI /countrycodes/list answers gzip that expands to --hostile-bytes", (*Hostility).gzipBomb},
	"invalid-utf8":     {"GSAPI /countrycodes/list answers with bytes that are not UTF-8 in a name", (*Hostility).invalidUTF8},
	"duplicate-keys":   {"GSAPI /countrycodes/list answers objects that name a key twice", (*Hostility).duplicateKeys},
	"token-in-data":    {"GSAPI /users/list answers a user record holding the VompApiToken it was sent", (*Hostility).tokenInData},
}

// HostileModes lists the modes with what each does, sorted by name.
func HostileModes() [][2]string {
	var out [][2]string
	for _, name := range slices.Sorted(maps.Keys(hostileModes)) {
		out = append(out, [2]string{name, hostileModes[name].about})
	}
	return out
}

// DefaultHostileBytes is the size of the huge-* modes' answers unless Options.HostileBytes says.
const DefaultHostileBytes = 300 << 20

// Hostility is the state of one hostile mode: what it picked, and a catcher on another port that
// counts what is sent to it.
type Hostility struct {
	s     *Sandbox
	mode  string
	size  int64
	mu    sync.Mutex
	first map[string]string // what a "first" mode picked (an invoice number), by mode
	extra map[string]any    // the invoice an extra-invoice mode adds, the same in every answer
	once  atomic.Bool
	// Elsewhere counts requests that reached the catcher, and those that carried a credential.
	catcher             *httptest.Server
	Elsewhere, Carrying atomic.Int64
	// Extra counts requests for the invoice an extra-invoice mode added (its detail or PDF).
	Extra atomic.Int64
}

// SetHostile switches the sandbox into mode ("" for none); a catcher starts with it.
func (s *Sandbox) SetHostile(mode string) error {
	if mode == "" {
		if old := s.hostile.Swap(nil); old != nil {
			old.close()
		}
		return nil
	}
	if _, ok := hostileModes[mode]; !ok {
		return fmt.Errorf("unknown hostile mode %q (see extract sandbox --help)", mode)
	}
	size := s.opts.HostileBytes
	if size <= 0 {
		size = DefaultHostileBytes
	}
	h := &Hostility{s: s, mode: mode, size: size, first: map[string]string{}}
	h.catcher = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.Elsewhere.Add(1)
		if r.Header.Get("Authorization") != "" || r.Header.Get("VompApiToken") != "" {
			h.Carrying.Add(1)
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": []any{}, "next": nil})
	}))
	if old := s.hostile.Swap(h); old != nil {
		old.close()
	}
	return nil
}

// Hostility is the current hostile mode's state (nil for none).
func (s *Sandbox) Hostility() *Hostility { return s.hostile.Load() }

// Picked is what a "first …" mode chose (the invoice number it refused), "" before it did.
func (h *Hostility) Picked() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.first[h.mode]
}

// CatcherURL is where the catcher listens: the "other host" of the modes that point elsewhere.
func (h *Hostility) CatcherURL() string { return h.catcher.URL }

func (h *Hostility) close() { h.catcher.Close() }

func (h *Hostility) serve(w http.ResponseWriter, r *http.Request) bool {
	return hostileModes[h.mode].serve(h, w, r)
}

// pick returns the item a "first" mode acts on: the first one asked for.
func (h *Hostility) pick(item string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.first[h.mode] == "" {
		h.first[h.mode] = item
	}
	return h.first[h.mode]
}

// rewrite answers r as the sandbox would, with edit applied to the body.
func (h *Hostility) rewrite(w http.ResponseWriter, r *http.Request, edit func([]byte) []byte) {
	rec := httptest.NewRecorder()
	h.s.mux.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		body = edit(body)
	}
	maps.Copy(w.Header(), rec.Header())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

func isGS(r *http.Request, path string) bool { return r.URL.Path == GSAPIPrefix+path }
func isSig(r *http.Request, path string) bool {
	return r.URL.Path == SignicatPrefix+path
}

func tokenEcho(status int) func(*Hostility, http.ResponseWriter, *http.Request) bool {
	return func(h *Hostility, w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != SignicatToken {
			return false
		}
		body, _ := io.ReadAll(r.Body)
		if status >= 500 {
			// An error page of a proxy in front of the endpoint: not JSON.
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			fmt.Fprintf(w, "<html><body><h1>Error</h1><pre>%s\n%q</pre></body></html>", body, r.Header)
			return true
		}
		// A short OAuth error whose description quotes the request, as some servers' do.
		writeJSON(w, status, map[string]any{"error": "invalid_client", "error_description": "refused " + string(body)})
		return true
	}
}

func welcomeEcho(status int) func(*Hostility, http.ResponseWriter, *http.Request) bool {
	return func(h *Hostility, w http.ResponseWriter, r *http.Request) bool {
		if !isGS(r, "/welcome") {
			return false
		}
		auth := r.Header.Get("Authorization")
		decoded, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		fmt.Fprintf(w, "Access denied for Authorization: %s (%s)", auth, decoded)
		return true
	}
}

func (h *Hostility) foreignNext(w http.ResponseWriter, r *http.Request) bool {
	if !isSig(r, "/organizations") || r.URL.Query().Get("page") != "" {
		return false
	}
	h.rewrite(w, r, func(b []byte) []byte {
		var page map[string]any
		_ = json.Unmarshal(b, &page)
		page["next"] = h.catcher.URL + SignicatPrefix + "/organizations?page=stolen"
		out, _ := json.Marshal(page)
		return out
	})
	return true
}

func (h *Hostility) foreignRedirect(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/users/list") {
		return false
	}
	http.Redirect(w, r, h.catcher.URL+GSAPIPrefix+"/users/list", http.StatusFound)
	return true
}

func (h *Hostility) redirectLoop(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/countrycodes/list") {
		return false
	}
	http.Redirect(w, r, r.URL.String(), http.StatusTemporaryRedirect)
	return true
}

// extraInvoice adds an invoice numbered number, dated date ("" keeps the copied one), to every
// invoice list, and serves its detail and PDF as the first listed invoice's.
func extraInvoice(number, date string) func(*Hostility, http.ResponseWriter, *http.Request) bool {
	return func(h *Hostility, w http.ResponseWriter, r *http.Request) bool {
		switch {
		case isSig(r, "/invoices"):
			h.rewrite(w, r, func(b []byte) []byte {
				var list []map[string]any
				if json.Unmarshal(b, &list) != nil || len(list) == 0 {
					return b
				}
				h.pick(list[0]["invoiceNumber"].(string))
				h.mu.Lock()
				if h.extra == nil {
					h.extra = maps.Clone(list[0])
					h.extra["invoiceNumber"] = number
					if date != "" {
						h.extra["invoiceDate"] = date
					}
				}
				extra := h.extra
				h.mu.Unlock()
				out, _ := json.Marshal(append(list, extra))
				return out
			})
			return true
		case strings.HasPrefix(r.URL.Path, SignicatPrefix+"/invoices/") && h.Picked() != "":
			rest := strings.TrimPrefix(r.URL.Path, SignicatPrefix+"/invoices/")
			if n, pdf := strings.CutSuffix(rest, "/pdf"); n == number || n == strings.ReplaceAll(number, ".", "%2E") {
				h.Extra.Add(1)
				r2 := r.Clone(r.Context())
				r2.URL.Path = SignicatPrefix + "/invoices/" + h.Picked() + map[bool]string{true: "/pdf"}[pdf]
				h.rewrite(w, r2, func(b []byte) []byte {
					if pdf {
						return b
					}
					var inv map[string]any
					_ = json.Unmarshal(b, &inv)
					inv["invoiceNumber"] = number
					if date != "" {
						inv["invoiceDate"] = date
					}
					out, _ := json.Marshal(inv)
					return out
				})
				return true
			}
		}
		return false
	}
}

func (h *Hostility) missingInvoice(w http.ResponseWriter, r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, SignicatPrefix+"/invoices/")
	if !ok {
		return false
	}
	n, _ := strings.CutSuffix(rest, "/pdf")
	if h.pick(n) != n {
		return false
	}
	writeProblem(w, http.StatusNotFound, "not_found", "Invoice "+n+" was not found.")
	return true
}

func (h *Hostility) nullList(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case isSig(r, "/organizations"):
		writeRaw(w, []byte(`{"data": null, "next": null}`))
	case isGS(r, "/organizations/list"):
		writeRaw(w, []byte("null"))
	default:
		return false
	}
	return true
}

func (h *Hostility) nullWindow(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/datasync") || r.URL.Query().Get("option") != "Invoices" {
		return false
	}
	writeRaw(w, []byte("null"))
	return true
}

func (h *Hostility) hangOnce(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/countrycodes/list") || h.once.Swap(true) {
		return false
	}
	<-r.Context().Done()
	return true
}

func (h *Hostility) trickleOnce(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/countrycodes/list") || h.once.Swap(true) {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	// The answer, after 4 KiB of whitespace: complete only after more than an hour.
	body := append(bytes.Repeat([]byte(" "), 4<<10), `[{"code":"FI","name":"Finland"}]`...)
	for _, c := range body {
		if _, err := w.Write([]byte{c}); err != nil {
			return true
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return true
		case <-time.After(time.Second):
		}
	}
	return true
}

func (h *Hostility) retryAfterDay(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/users/list") {
		return false
	}
	w.Header().Set("Retry-After", "86400")
	writeAPIError(w, "gsapi", http.StatusTooManyRequests, "Come back tomorrow")
	return true
}

func (h *Hostility) endlessNext(w http.ResponseWriter, r *http.Request) bool {
	if !isSig(r, "/contacts") {
		return false
	}
	if q := r.URL.Query(); strings.HasPrefix(q.Get("page"), "more-") {
		// Its own tokens: answer them as the first page again.
		q.Del("page")
		r = r.Clone(r.Context())
		r.URL.RawQuery = q.Encode()
	}
	h.rewrite(w, r, func(b []byte) []byte {
		var page map[string]any
		_ = json.Unmarshal(b, &page)
		page["next"] = "more-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		out, _ := json.Marshal(page)
		return out
	})
	return true
}

// hugeList streams a JSON list of h.size bytes of small organisations, never holding it.
func (h *Hostility) hugeList(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/organizations/list") {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "[")
	var written int64
	for i := 0; written < h.size; i++ {
		rec := fmt.Sprintf(`{"org_id":%d,"parent_org_id":0,"name":"Organisation %d with a name long enough to weigh something","vatnumber":"FI%08d","type":1},`, 100000+i, i, i)
		if i == 0 {
			rec = rec[:len(rec)-1]
		} else {
			rec = "," + rec[:len(rec)-1]
		}
		n, err := io.WriteString(w, rec)
		if err != nil {
			return true
		}
		written += int64(n)
	}
	_, _ = io.WriteString(w, "]")
	return true
}

// hugePage streams a {data, next} page of h.size bytes of small contacts, never holding it.
func (h *Hostility) hugePage(w http.ResponseWriter, r *http.Request) bool {
	if !isSig(r, "/contacts") {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"data":[`)
	var written int64
	for i := 0; written < h.size; i++ {
		rec := fmt.Sprintf(`{"id":"c-%d","name":"Contact %d with a name long enough to weigh something","email":"c%d@example.com"}`, i, i, i)
		if i > 0 {
			rec = "," + rec
		}
		n, err := io.WriteString(w, rec)
		if err != nil {
			return true
		}
		written += int64(n)
	}
	_, _ = io.WriteString(w, `],"next":null}`)
	return true
}

// hugeValue streams one user record whose name is h.size bytes.
func (h *Hostility) hugeValue(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/users/list") {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `[{"u_id":1,"name":"`)
	chunk := bytes.Repeat([]byte("A"), 64<<10)
	for written := int64(0); written < h.size; written += int64(len(chunk)) {
		if _, err := w.Write(chunk); err != nil {
			return true
		}
	}
	_, _ = io.WriteString(w, `"}]`)
	return true
}

func (h *Hostility) hugePDF(w http.ResponseWriter, r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, SignicatPrefix+"/invoices/")
	n, pdf := strings.CutSuffix(rest, "/pdf")
	if !ok || !pdf || h.pick(n) != n {
		return false
	}
	w.Header().Set("Content-Type", "application/pdf")
	_, _ = io.WriteString(w, "%PDF-1.4\n")
	chunk := bytes.Repeat([]byte("0"), 64<<10)
	for written := int64(0); written < h.size; written += int64(len(chunk)) {
		if _, err := w.Write(chunk); err != nil {
			return true
		}
	}
	return true
}

func (h *Hostility) hugeTotal(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/datatable/list") {
		return false
	}
	rec := httptest.NewRecorder()
	h.s.mux.ServeHTTP(rec, r)
	maps.Copy(w.Header(), rec.Header())
	w.Header().Set("X-GSAPI-QueryTotalCount", "1000000000000000")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	return true
}

func (h *Hostility) gzipBomb(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/countrycodes/list") {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Encoding", "gzip")
	zw := gzip.NewWriter(w)
	_, _ = io.WriteString(zw, "[")
	spaces := bytes.Repeat([]byte(" "), 1<<20)
	for written := int64(0); written < h.size; written += int64(len(spaces)) {
		if _, err := zw.Write(spaces); err != nil {
			return true
		}
	}
	_, _ = io.WriteString(zw, "]")
	_ = zw.Close()
	return true
}

func (h *Hostility) invalidUTF8(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/countrycodes/list") {
		return false
	}
	h.rewrite(w, r, func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"Finland"`), []byte("\"Fin\xffland\xc3\""), 1)
	})
	return true
}

func (h *Hostility) duplicateKeys(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/countrycodes/list") {
		return false
	}
	h.rewrite(w, r, func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte(`{`), []byte(`{"descr_eng":"shadowed",`))
	})
	return true
}

func (h *Hostility) tokenInData(w http.ResponseWriter, r *http.Request) bool {
	if !isGS(r, "/users/list") {
		return false
	}
	tok := r.Header.Get("VompApiToken")
	h.rewrite(w, r, func(b []byte) []byte {
		var list []map[string]any
		if json.Unmarshal(b, &list) != nil || len(list) == 0 {
			return b
		}
		list[0]["session"] = tok
		out, _ := json.Marshal(list)
		return out
	})
	return true
}
