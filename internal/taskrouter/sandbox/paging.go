package sandbox

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// paging is what a list request asked for.
//
// Page is, as Twilio documents it, "simply for client state": it is echoed in meta.page.
// The position comes from PageToken, an opaque token the server puts in next_page_url
// and previous_page_url: "PA<hex seq>" (the items created after seq) or "PB<hex seq>"
// (the page of items created before seq). Without a token, Page*PageSize is used as an
// offset, which is what a client that builds page URLs itself expects.
type paging struct {
	size      int
	page      int
	token     string // as received, echoed in meta.url
	after     uint64
	before    uint64
	hasAfter  bool
	hasBefore bool
}

func parsePaging(q map[string][]string) (paging, *apiError) {
	p := paging{size: DefaultPageSize}
	if v, ok := first(q, "PageSize"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, errInvalid(fmt.Sprintf("PageSize must be an integer between 1 and %d", MaxPageSize))
		}
		p.size = min(n, MaxPageSize)
	}
	if v, ok := first(q, "Page"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, errInvalid("Page must be a non-negative integer")
		}
		p.page = n
	}
	if v, ok := first(q, "PageToken"); ok && v != "" {
		p.token = v
		if len(v) < 3 {
			return p, errInvalid("Invalid PageToken")
		}
		seq, err := strconv.ParseUint(v[2:], 16, 64)
		if err != nil {
			return p, errInvalid("Invalid PageToken")
		}
		switch v[:2] {
		case "PA":
			p.after, p.hasAfter = seq, true
		case "PB":
			p.before, p.hasBefore = seq, true
		default:
			return p, errInvalid("Invalid PageToken")
		}
	}
	return p, nil
}

func afterToken(seq uint64) string  { return "PA" + strconv.FormatUint(seq, 16) }
func beforeToken(seq uint64) string { return "PB" + strconv.FormatUint(seq, 16) }

// page is one page of a list, and the tokens of its neighbours ("" when there is none).
type page[T any] struct {
	items      []T
	prev, next string
}

// paginate cuts the page p asks for out of all, which is sorted by seq.
func paginate[T any](all []T, seq func(T) uint64, p paging) page[T] {
	n := len(all)
	var start, end int
	switch {
	case p.hasAfter:
		start = sort.Search(n, func(i int) bool { return seq(all[i]) > p.after })
		end = min(start+p.size, n)
	case p.hasBefore:
		end = sort.Search(n, func(i int) bool { return seq(all[i]) >= p.before })
		start = max(0, end-p.size)
	default:
		start = n
		if p.page <= n { // avoids overflowing page*size
			start = min(p.page*p.size, n)
		}
		end = min(start+p.size, n)
	}
	pg := page[T]{items: all[start:end]}
	switch {
	case end < n && end > start:
		pg.next = afterToken(seq(all[end-1]))
	case end < n:
		pg.next = afterToken(seq(all[end]) - 1)
	}
	switch {
	case start > 0 && start < n:
		pg.prev = beforeToken(seq(all[start]))
	case start > 0:
		pg.prev = beforeToken(seq(all[n-1]) + 1)
	}
	return pg
}

// meta builds the "meta" object of a list response. listURL is the absolute URL of the
// list without a query, filters the encoded filter parameters to keep in every page URL.
func (pg page[T]) meta(listURL, key, filters string, p paging) metaJSON {
	prefix := listURL + "?"
	if filters != "" {
		prefix += filters + "&"
	}
	pageURL := func(page int, token string) string {
		u := prefix + "PageSize=" + strconv.Itoa(p.size) + "&Page=" + strconv.Itoa(page)
		if token != "" {
			u += "&PageToken=" + url.QueryEscape(token)
		}
		return u
	}
	m := metaJSON{
		Page:         p.page,
		PageSize:     p.size,
		FirstPageURL: pageURL(0, ""),
		URL:          pageURL(p.page, p.token),
		Key:          key,
	}
	if pg.next != "" {
		u := pageURL(p.page+1, pg.next)
		m.NextPageURL = &u
	}
	if pg.prev != "" {
		u := pageURL(max(p.page-1, 0), pg.prev)
		m.PreviousPageURL = &u
	}
	return m
}

// echoFilters encodes the parameters of q named in names, in that order, for page URLs.
func echoFilters(q map[string][]string, names ...string) string {
	var parts []string
	for _, name := range names {
		if v, ok := first(q, name); ok {
			parts = append(parts, url.QueryEscape(name)+"="+url.QueryEscape(v))
		}
	}
	return strings.Join(parts, "&")
}
