package gen

import (
	"archive/tar"
	"encoding/json"
	"strings"
)

// Non-table members a partner ships next to its extracts. None of their names matches
// {table}_{YYYYMMDD}_{batch}.csv, so an extractor must skip them, including notes.csv and the CSV in data/.

func readme(ap *archivePlan) []byte {
	var b strings.Builder
	b.WriteString("Acme Data Co. - daily partner drop\r\n")
	b.WriteString("Archive: " + ap.name + "\r\n")
	b.WriteString("Process date: " + ap.date.Format("2006-01-02") + "\r\n\r\n")
	b.WriteString("Files named <table>_<YYYYMMDD>_<batch>.csv are table extracts: UTF-8, comma-separated,\r\n")
	b.WriteString("RFC 4180 quoting, first line is the header, empty fields are nulls.\r\n")
	b.WriteString("manifest.json lists them. Everything else is documentation.\r\n")
	return []byte(b.String())
}

func notesCSV(ap *archivePlan) []byte {
	return []byte("note_id,author,note\n" +
		"1,ops,\"Batch 002 re-sent, see ticket #4411\"\n" +
		"2,qa,\"Header \"\"temp_c\"\" is Celsius\"\n" +
		"3,ops,Process date " + ap.date.Format("2006-01-02") + "\n")
}

func dataFolder() []Member {
	return []Member{
		{Name: "data/", Typeflag: tar.TypeDir},
		{Name: "data/reference/", Typeflag: tar.TypeDir},
		{Name: "data/reference/stations.csv", Typeflag: tar.TypeReg, Body: []byte("station_id,name,zip\n" +
			"USW00024233,\"Seattle-Tacoma Intl, WA\",98158\n" +
			"USW00094728,\"Central Park, NY\",10024\n" +
			"USW00014739,\"Boston Logan, MA\",02128\n")},
		{Name: "data/reference/README.md", Typeflag: tar.TypeReg, Body: []byte("# Reference data\n\nStation lookup, not a daily extract.\n")},
	}
}

type partnerFile struct {
	Name  string `json:"name"`
	Rows  int    `json:"rows"`
	Bytes int64  `json:"bytes"`
}

// partnerManifest is the partner's own listing of the table members (the last entry of every archive).
func partnerManifest(ap *archivePlan, members []MemberInfo) []byte {
	doc := struct {
		Partner     string        `json:"partner"`
		Archive     string        `json:"archive"`
		ProcessDate string        `json:"process_date"`
		Files       []partnerFile `json:"files"`
	}{Partner: "acme-data", Archive: ap.name, ProcessDate: ap.date.Format("2006-01-02"), Files: []partnerFile{}}
	for _, m := range members {
		if m.Table != "" {
			doc.Files = append(doc.Files, partnerFile{Name: m.Name, Rows: m.Rows, Bytes: m.Bytes})
		}
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n')
}
