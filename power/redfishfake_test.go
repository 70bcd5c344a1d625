package power

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// fakeRedfish is a Redfish service with one ComputerSystem that follows the
// DMTF schema (ServiceRoot, ComputerSystemCollection, ComputerSystem with
// Boot and the Reset action) and enforces the protocol: authentication on
// everything but the service root, 405 for wrong methods, 400 for unknown
// properties and for reset types outside its AllowableValues, 412 for a
// stale If-Match, 409 for a reset the power state does not allow. It records
// what was done, and what the machine then booted, in order.
type fakeRedfish struct {
	t          *testing.T
	user, pass string
	noSessions bool     // no SessionService: clients must use basic auth
	resetTypes []string // ResetType@Redfish.AllowableValues

	mu         sync.Mutex
	power      string // On or Off
	override   string // BootSourceOverrideEnabled
	target     string // BootSourceOverrideTarget
	etag       int
	sessions   map[string]bool // live session tokens
	nSessions  int
	logins     int
	ops        []string
	violations []string // requests the fake refused: for diagnostics
}

// redfishBootTargets are the fake's BootSourceOverrideTarget@Redfish.AllowableValues.
func redfishBootTargets() []string {
	return []string{"None", "Pxe", "Hdd", "Cd", "BiosSetup", "UefiHttp"}
}

func newFakeRedfish(t *testing.T, power string) *fakeRedfish {
	return &fakeRedfish{
		t: t, user: "root", pass: testPassword, power: power,
		override: "Disabled", target: "None",
		resetTypes: []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn", "PushPowerButton", "PowerCycle"},
		sessions:   map[string]bool{},
	}
}

// start serves the fake over HTTP or, with tls, HTTPS with a self-signed
// certificate; the server closes when the test ends.
func (f *fakeRedfish) start(tls bool) *httptest.Server {
	mux := http.NewServeMux()
	// The service root and the version document answer without
	// authentication (DSP0266, 13.3.1), for discovery.
	mux.HandleFunc("GET /redfish/v1/{$}", f.serviceRoot)
	mux.HandleFunc("GET /redfish/v1", f.serviceRoot)
	if !f.noSessions {
		mux.HandleFunc("POST /redfish/v1/SessionService/Sessions", f.login)
		mux.HandleFunc("DELETE /redfish/v1/SessionService/Sessions/{id}", f.auth(f.logout))
	}
	mux.HandleFunc("GET /redfish/v1/Systems", f.auth(f.systems))
	mux.HandleFunc("GET /redfish/v1/Systems/1", f.auth(f.system))
	mux.HandleFunc("PATCH /redfish/v1/Systems/1", f.auth(f.patchSystem))
	mux.HandleFunc("POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset", f.auth(f.reset))
	h := f.watch(mux)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(testWriter{f.t}, "fake redfish: ", 0)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	f.t.Cleanup(srv.Close)
	return srv
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// watch records every refused request (405s from the mux included).
func (f *fakeRedfish) watch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		if sw.code >= 400 {
			f.mu.Lock()
			f.violations = append(f.violations, fmt.Sprintf("%d %s %s", sw.code, r.Method, r.URL.Path))
			f.mu.Unlock()
		}
	})
}

// redfishError writes a Redfish error response (DSP0266, 9.6.2).
func redfishError(w http.ResponseWriter, code int, id, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="fake BMC"`)
	}
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": "Base.1.16." + id, "message": msg,
		"@Message.ExtendedInfo": []map[string]string{{"MessageId": "Base.1.16." + id, "Message": msg}},
	}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// auth admits requests with valid basic credentials or a live session token.
func (f *fakeRedfish) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		ok := f.sessions[r.Header.Get("X-Auth-Token")]
		f.mu.Unlock()
		if u, p, basic := r.BasicAuth(); basic && u == f.user && p == f.pass {
			ok = true
		}
		if !ok {
			redfishError(w, http.StatusUnauthorized, "NoValidSession", "There is no valid session established with the implementation.")
			return
		}
		next(w, r)
	}
}

func (f *fakeRedfish) serviceRoot(w http.ResponseWriter, r *http.Request) {
	root := map[string]any{
		"@odata.id":      "/redfish/v1/",
		"@odata.type":    "#ServiceRoot.v1_15_0.ServiceRoot",
		"Id":             "RootService",
		"Name":           "Root Service",
		"RedfishVersion": "1.17.0",
		"Systems":        map[string]string{"@odata.id": "/redfish/v1/Systems"},
		"Links":          map[string]any{},
	}
	if !f.noSessions {
		root["SessionService"] = map[string]string{"@odata.id": "/redfish/v1/SessionService"}
		root["Links"] = map[string]any{"Sessions": map[string]string{"@odata.id": "/redfish/v1/SessionService/Sessions"}}
	}
	writeJSON(w, http.StatusOK, root)
}

func (f *fakeRedfish) login(w http.ResponseWriter, r *http.Request) {
	var req struct{ UserName, Password string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		redfishError(w, http.StatusBadRequest, "MalformedJSON", "The request body submitted was malformed JSON.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logins++
	if req.UserName != f.user || req.Password != f.pass {
		redfishError(w, http.StatusUnauthorized, "ResourceAtUriUnauthorized", "While accessing the resource at /redfish/v1/SessionService/Sessions, the service received an authorization error.")
		return
	}
	f.nSessions++
	id := strconv.Itoa(f.nSessions)
	token := fmt.Sprintf("token-%s-%x", id, f.nSessions*7919)
	f.sessions[token] = true
	loc := "/redfish/v1/SessionService/Sessions/" + id
	w.Header().Set("X-Auth-Token", token)
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusCreated, map[string]any{"@odata.id": loc, "@odata.type": "#Session.v1_7_0.Session", "Id": id, "Name": "Session", "UserName": req.UserName})
}

func (f *fakeRedfish) logout(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	want := fmt.Sprintf("token-%s-", r.PathValue("id"))
	for tok := range f.sessions {
		if len(tok) > len(want) && tok[:len(want)] == want {
			delete(f.sessions, tok)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	redfishError(w, http.StatusNotFound, "ResourceNotFound", "The requested resource of type Session was not found.")
}

func (f *fakeRedfish) systems(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.id":           "/redfish/v1/Systems",
		"@odata.type":         "#ComputerSystemCollection.ComputerSystemCollection",
		"Name":                "Computer System Collection",
		"Members@odata.count": 1,
		"Members":             []map[string]string{{"@odata.id": "/redfish/v1/Systems/1"}},
	})
}

func (f *fakeRedfish) etagLocked() string { return fmt.Sprintf(`W/"%d"`, f.etag) }

func (f *fakeRedfish) system(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("ETag", f.etagLocked())
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.id":   "/redfish/v1/Systems/1",
		"@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
		"@odata.etag": f.etagLocked(),
		"Id":          "1",
		"Name":        "node1",
		"SystemType":  "Physical",
		"PowerState":  f.power,
		"Boot": map[string]any{
			"BootSourceOverrideEnabled":                        f.override,
			"BootSourceOverrideTarget":                         f.target,
			"BootSourceOverrideTarget@Redfish.AllowableValues": redfishBootTargets(),
			"BootSourceOverrideMode":                           "UEFI",
		},
		"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
			"target":                            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
			"ResetType@Redfish.AllowableValues": f.resetTypes,
		}},
	})
}

// patchSystem accepts the writable Boot properties only.
func (f *fakeRedfish) patchSystem(w http.ResponseWriter, r *http.Request) {
	var body map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		redfishError(w, http.StatusBadRequest, "MalformedJSON", "The request body submitted was malformed JSON.")
		return
	}
	var boot map[string]string
	for k, v := range body {
		if k != "Boot" {
			redfishError(w, http.StatusBadRequest, "PropertyNotWritable", "The property "+k+" is a read only property.")
			return
		}
		if err := json.Unmarshal(v, &boot); err != nil {
			redfishError(w, http.StatusBadRequest, "PropertyValueTypeError", "The value for the property Boot is of a different type.")
			return
		}
	}
	allowed := map[string][]string{
		"BootSourceOverrideEnabled": {"Disabled", "Once", "Continuous"},
		"BootSourceOverrideTarget":  redfishBootTargets(),
		"BootSourceOverrideMode":    {"UEFI", "Legacy"},
	}
	for k, v := range boot {
		vals, known := allowed[k]
		if !known {
			redfishError(w, http.StatusBadRequest, "PropertyUnknown", "The property Boot/"+k+" is not in the list of valid properties.")
			return
		}
		if !slices.Contains(vals, v) {
			redfishError(w, http.StatusBadRequest, "PropertyValueNotInList", "The value "+v+" for the property Boot/"+k+" is not in the list of acceptable values.")
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := r.Header.Get("If-Match"); m != "" && m != f.etagLocked() {
		redfishError(w, http.StatusPreconditionFailed, "PreconditionFailed", "The ETag supplied did not match the ETag required to change this resource.")
		return
	}
	if v, ok := boot["BootSourceOverrideEnabled"]; ok {
		f.override = v
	}
	if v, ok := boot["BootSourceOverrideTarget"]; ok {
		f.target = v
	}
	f.etag++
	f.ops = append(f.ops, "PATCH Boot "+boot["BootSourceOverrideTarget"]+" "+boot["BootSourceOverrideEnabled"])
	w.WriteHeader(http.StatusNoContent)
}

// reset performs ComputerSystem.Reset. A boot that follows consumes a Once
// override, as a real system does.
func (f *fakeRedfish) reset(w http.ResponseWriter, r *http.Request) {
	var req map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		redfishError(w, http.StatusBadRequest, "MalformedJSON", "The request body submitted was malformed JSON.")
		return
	}
	var rt string
	for k, v := range req {
		if k != "ResetType" {
			redfishError(w, http.StatusBadRequest, "ActionParameterUnknown", "The action ComputerSystem.Reset was submitted with the invalid parameter "+k+".")
			return
		}
		if err := json.Unmarshal(v, &rt); err != nil {
			redfishError(w, http.StatusBadRequest, "ActionParameterValueTypeError", "The value for the parameter ResetType is of a different type.")
			return
		}
	}
	if rt == "" {
		redfishError(w, http.StatusBadRequest, "ActionParameterMissing", "The action ComputerSystem.Reset requires the parameter ResetType to be present in the request body.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(f.resetTypes, rt) {
		redfishError(w, http.StatusBadRequest, "ActionParameterValueNotInList", "The value "+rt+" for the parameter ResetType is not in the list of acceptable values.")
		return
	}
	boots := false
	switch rt {
	case "On", "ForceOn", "PushPowerButton":
		if f.power == "On" && rt != "PushPowerButton" {
			redfishError(w, http.StatusConflict, "ResourceInStandby", "The request could not be performed because the resource is already on.")
			return
		}
		if f.power == "On" {
			f.power = "Off"
		} else {
			f.power, boots = "On", true
		}
	case "ForceOff", "GracefulShutdown":
		if f.power == "Off" {
			redfishError(w, http.StatusConflict, "ResourceInStandby", "The request could not be performed because the resource is already off.")
			return
		}
		f.power = "Off"
	case "ForceRestart", "GracefulRestart", "PowerCycle":
		if f.power == "Off" {
			redfishError(w, http.StatusConflict, "ResourceInStandby", "The request could not be performed because the resource is off.")
			return
		}
		boots = true
	}
	f.ops = append(f.ops, "Reset "+rt)
	if boots {
		from := "default"
		if f.override != "Disabled" {
			from = f.target
		}
		if f.override == "Once" {
			f.override = "Disabled"
		}
		f.ops = append(f.ops, "boot "+from)
	}
	f.etag++
	w.WriteHeader(http.StatusNoContent)
}

// done returns and clears the recorded operations.
func (f *fakeRedfish) done() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ops := f.ops
	f.ops = nil
	return ops
}

// liveSessions counts the sessions not logged out.
func (f *fakeRedfish) liveSessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sessions)
}

func (f *fakeRedfish) refused() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

// raw sends a request to the fake as any HTTP client could, with basic auth
// unless user is empty.
func raw(t *testing.T, srv *httptest.Server, method, path, user, pass, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
