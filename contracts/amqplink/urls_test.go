package amqplink_test

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"cafe/contracts"
	"cafe/contracts/amqplink"
)

func TestParseURLsTakesAList(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want []string
	}{
		{"amqp://h:5672/", []string{"amqp://h:5672/"}},
		{"amqp://u:p@a:5681/,amqp://u:p@b:5682/", []string{"amqp://u:p@a:5681/", "amqp://u:p@b:5682/"}},
		{" amqp://a/ , amqp://b/ ,amqp://c:1/", []string{"amqp://a/", "amqp://b/", "amqp://c:1/"}},
		{"amqps://u:p%2Cq@a:5671/v,amqps://u:x@b:5671/v", []string{"amqps://u:p%2Cq@a:5671/v", "amqps://u:x@b:5671/v"}},
		{"amqp://[::1]:5672/", []string{"amqp://[::1]:5672/"}},
		{"amqp://a/%2F,amqp://b/%2F", []string{"amqp://a/%2F", "amqp://b/%2F"}},
		{"amqp://a/?heartbeat=5,amqp://b/?heartbeat=5", []string{"amqp://a/?heartbeat=5", "amqp://b/?heartbeat=5"}}, // amqp091-go's own URL options pass through
	} {
		got, err := amqplink.ParseURLs(tc.raw)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseURLs(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
}

func TestParseURLsRefusesBadListsNamingTheURL(t *testing.T) {
	long := "amqp://h/" + strings.Repeat("v", 3000)
	for _, tc := range []struct {
		raw, says string
	}{
		{"", "empty"},
		{"  ", "empty"},
		{",", "URL 1 of 2"},
		{"amqp://a/,", "URL 2 of 2"},
		{"amqp://a/,,amqp://b/", "URL 2 of 3"},
		{"http://a/", "scheme"},
		{"amqp://a/,mqtt://b/", "URL 2 of 2"},
		{"amqp:///", "no host"},
		{"amqp://:5672/", "no host"},
		{"amqp://a:0/", "port"},
		{"amqp://a:70000/", "port"},
		{"amqp://a:-1/", "URL 1 of 1"},
		{"amqp://a:5672/,amqps://b:5671/", "one scheme"},
		{"amqp://u1:p@a/,amqp://u2:p@b/", "same user"},
		{"amqp://u:p@a/,amqp://b/", "same user"},
		{"amqp://a/one,amqp://b/two", "same vhost"},
		{"amqp://a/#x", "fragment"},
		{"amqp://a/\x00", "control character"},
		{"amqp://a/\x01x,amqp://b/", "control character"},
		{"amqp://a b/", "URL 1 of 1"},
		{"%zz", "URL 1 of 1"},
		{long, "bytes"},
		{strings.Repeat("amqp://a/,", amqplink.MaxURLs) + "amqp://a/", "at most"},
	} {
		_, err := amqplink.ParseURLs(tc.raw)
		if err == nil {
			t.Errorf("ParseURLs(%.60q) accepted", tc.raw)
			continue
		}
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ParseURLs(%.60q) = %v; want it to say %q", tc.raw, err, tc.says)
		}
		if !slices.Contains(contracts.InvalidSettings(err), amqplink.SettingURL) {
			t.Errorf("ParseURLs(%.60q): %v does not name %s", tc.raw, err, amqplink.SettingURL)
		}
		if len(err.Error()) > 400 {
			t.Errorf("ParseURLs(%.60q): an error of %d bytes; want a short one", tc.raw, len(err.Error()))
		}
	}
}

func TestParseURLsNeverShowsAPassword(t *testing.T) {
	for _, raw := range []string{
		"amqp://u:secret@a/,amqp://other:secret@b/",
		"amqp://u:secret@a:99999/",
		"amqp://u:secret@a/,amqps://u:secret@b/",
	} {
		_, err := amqplink.ParseURLs(raw)
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURLs(%q) = %v; want an error without the password", raw, err)
		}
	}
}

func TestFirstAndMapURLs(t *testing.T) {
	list := "amqp://a:1/, amqp://b:2/"
	if got := amqplink.FirstURL(list); got != "amqp://a:1/" {
		t.Errorf("FirstURL = %q", got)
	}
	if got := amqplink.FirstURL("amqp://a/,"); got != "amqp://a/," {
		t.Errorf("FirstURL of a bad list = %q, want it unchanged (its check reports it)", got)
	}
	got := amqplink.MapURLs(list, func(u string) string { return strings.Replace(u, "amqp://", "amqp://x:y@", 1) })
	if got != "amqp://x:y@a:1/,amqp://x:y@b:2/" {
		t.Errorf("MapURLs = %q", got)
	}
}

// FuzzParseURLs: any input either parses into URLs that parse again one by
// one, or gives a bounded error naming the setting; never a panic.
func FuzzParseURLs(f *testing.F) {
	for _, s := range []string{"amqp://a/", "amqp://u:p@a:1/,amqp://u:q@b:2/", ",,,", "amqps://[::1]:5671/v", "amqp://a:99999/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		urls, err := amqplink.ParseURLs(raw)
		if err != nil {
			if !slices.Contains(contracts.InvalidSettings(err), amqplink.SettingURL) {
				t.Fatalf("error %v does not name the setting", err)
			}
			if !utf8.ValidString(err.Error()) && utf8.ValidString(raw) {
				t.Fatalf("error is not valid UTF-8: %q", err)
			}
			return
		}
		if len(urls) == 0 || len(urls) > amqplink.MaxURLs {
			t.Fatalf("%d URLs", len(urls))
		}
		for _, u := range urls {
			if _, err := amqplink.ParseURLs(u); err != nil {
				t.Fatalf("URL %q of an accepted list does not parse alone: %v", u, err)
			}
		}
	})
}
