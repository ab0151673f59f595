package arm

import (
	"net/http"
	"net/url"
	"strings"
)

// Params are the values of a matched route's {placeholders}, in path order,
// unescaped and with the case the client sent.
type Params struct {
	names  []string
	values []string
}

// Get returns the value of the named placeholder, or "".
func (p Params) Get(name string) string {
	for i, n := range p.names {
		if n == name {
			return p.values[i]
		}
	}
	return ""
}

// Route is one operation of the API.
type Route struct {
	// Method is the HTTP method (HEAD routes are declared explicitly).
	Method string
	// Pattern is the ARM path with {placeholders}; literal segments match
	// case-insensitively, a placeholder matches one non-empty segment. A
	// pattern may start with one {*name} placeholder that matches any number
	// of leading segments (an ARM scope); its value is "/" followed by them.
	Pattern string
	// Provider selects the api-versions accepted (see APIVersions).
	Provider string
	// Action is the Azure RBAC action the route performs.
	Action string
	// Handle serves the request.
	Handle func(w http.ResponseWriter, r *http.Request, p Params) error
	// Scope, when set, returns the scope the Action is authorised on; by
	// default it is the request path.
	Scope func(r *http.Request, p Params) (string, error)
	// Public routes need no token (the token issuer's endpoints).
	Public bool

	segs []segment
}

type segment struct {
	literal string // lower-cased literal, or "" for a placeholder
	name    string // placeholder name
	rest    bool   // {*name}: any number of segments
}

// Router matches requests against routes case-insensitively. It is built once
// and then read-only.
type Router struct {
	routes []*Route
}

// NewRouter compiles the routes. It panics on a malformed pattern: routes are
// program constants.
func NewRouter(routes []*Route) *Router {
	rt := &Router{}
	for _, r := range routes {
		for i, s := range strings.Split(strings.Trim(r.Pattern, "/"), "/") {
			switch {
			case i == 0 && strings.HasPrefix(s, "{*") && strings.HasSuffix(s, "}"):
				r.segs = append(r.segs, segment{name: s[2 : len(s)-1], rest: true})
			case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
				r.segs = append(r.segs, segment{name: s[1 : len(s)-1]})
			case s == "" || strings.ContainsAny(s, "{}"):
				panic("arm: malformed route pattern " + r.Pattern)
			default:
				r.segs = append(r.segs, segment{literal: strings.ToLower(s)})
			}
		}
		rt.routes = append(rt.routes, r)
	}
	return rt
}

// Match finds the route for method and the escaped path. A route with more
// literal segments wins over one with placeholders in their place. It returns
// a nil route and methodAllowed=true when the path exists for other methods.
func (rt *Router) Match(method, escapedPath string) (route *Route, p Params, pathExists bool, err error) {
	raw := strings.Split(strings.Trim(escapedPath, "/"), "/")
	if len(raw) == 1 && raw[0] == "" {
		raw = nil
	}
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, uerr := url.PathUnescape(s)
		if uerr != nil {
			return nil, Params{}, false, uerr
		}
		segs[i] = u
	}
	best, bestScore := -1, -1
	for i, r := range rt.routes {
		score, ok := matchSegs(r.segs, segs)
		if !ok {
			continue
		}
		pathExists = true
		if r.Method != method {
			continue
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return nil, Params{}, pathExists, nil
	}
	r := rt.routes[best]
	pattern := r.segs
	if len(pattern) > 0 && pattern[0].rest {
		n := len(segs) - (len(pattern) - 1)
		p.names = append(p.names, pattern[0].name)
		p.values = append(p.values, "/"+strings.Join(segs[:n], "/"))
		pattern, segs = pattern[1:], segs[n:]
	}
	for i, s := range pattern {
		if s.name != "" {
			p.names = append(p.names, s.name)
			p.values = append(p.values, segs[i])
		}
	}
	return r, p, true, nil
}

// matchSegs reports whether segs fits the pattern and how many literals matched.
func matchSegs(pattern []segment, segs []string) (int, bool) {
	if len(pattern) > 0 && pattern[0].rest {
		n := len(segs) - (len(pattern) - 1)
		if n < 0 {
			return 0, false
		}
		for _, s := range segs[:n] {
			if s == "" {
				return 0, false
			}
		}
		pattern, segs = pattern[1:], segs[n:]
	}
	if len(pattern) != len(segs) {
		return 0, false
	}
	score := 0
	for i, s := range pattern {
		switch {
		case segs[i] == "":
			return 0, false
		case s.name != "":
		case len(s.literal) == len(segs[i]) && strings.EqualFold(s.literal, segs[i]):
			score++
		default:
			return 0, false
		}
	}
	return score, true
}
