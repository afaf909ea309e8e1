package gen

import (
	"slices"
	"strconv"
)

// kind is how a column's values are made. There is deliberately no boolean kind: an outside DuckDB checker sums
// TRY_CAST(x AS DOUBLE) over the CSV text and over the Parquet output, and that cast treats the text "true" and a
// Parquet BOOLEAN differently, so a true/false column would make correct output look wrong.
type kind uint8

const (
	kID         kind = iota // base + row index: unique within a member
	kInt                    // uniform integer in [lo, hi]
	kFloat                  // uniform fixed-point number in [lo, hi] (scaled by 10^dec), written with dec decimals
	kDate                   // process date + [lo, hi] days, YYYY-MM-DD
	kTimestamp              // process date 00:00:00 + [lo, hi] seconds, "YYYY-MM-DD hh:mm:ss"
	kTimestampZ             // same, "YYYY-MM-DDThh:mm:ssZ"
	kCode                   // prefix + integer in [lo, hi] zero-padded to width (zip codes, station ids)
	kEnum                   // one of pool
	kText                   // one of pool, or with probability multi/1024 one of multiPool (embedded newlines)
)

// column is one column of a table's schema. Columns are immutable once the catalogue is built.
type column struct {
	name      string
	kind      kind
	lo, hi    int64
	dec       int
	width     int
	prefix    string
	hourly    bool   // timestamps on the hour
	null      uint32 // probability/1024 of an empty field
	pool      []string
	multiPool []string
	multi     uint32

	// follows: when the named column is in the member, the value is that column's value in the same row plus a
	// delta in [dlo, dhi] (same kind and unit: days, seconds, or the scaled fixed-point integer). Otherwise
	// (the column was dropped by drift) lo/hi apply.
	follows  string
	dlo, dhi int64

	// distinct > 0: values come from a fixed set of this many values in [lo, hi], the same set in every member
	// (a partner has 30 weather stations, not 99,999): realistic, and it compresses like real extracts do.
	distinct int
}

func (c *column) of(n int) *column { c.distinct = n; return c }

func (c *column) numeric() bool { return c.kind == kInt || c.kind == kFloat }

func (c *column) nulls(p float64) *column { c.null = uint32(p * 1024); return c }

func (c *column) after(ref string, dlo, dhi int64) *column {
	c.follows, c.dlo, c.dhi = ref, dlo, dhi
	return c
}

func idCol(name string) *column { return &column{name: name, kind: kID} }

func intCol(name string, lo, hi int64) *column {
	return &column{name: name, kind: kInt, lo: lo, hi: hi}
}

func floatCol(name string, lo, hi float64, dec int) *column {
	p := float64(pow10[dec])
	return &column{name: name, kind: kFloat, lo: int64(lo * p), hi: int64(hi * p), dec: dec}
}

func dateCol(name string, lo, hi int64) *column {
	return &column{name: name, kind: kDate, lo: lo, hi: hi}
}

// tsCol spans [loHours, hiHours) around the process date's midnight.
func tsCol(name string, loHours, hiHours int64, z bool) *column {
	k := kTimestamp
	if z {
		k = kTimestampZ
	}
	return &column{name: name, kind: k, lo: loHours * 3600, hi: hiHours*3600 - 1}
}

func codeCol(name, prefix string, lo, hi int64, width int) *column {
	return &column{name: name, kind: kCode, prefix: prefix, lo: lo, hi: hi, width: width}
}

// zipCol: five digits, about 10% with a leading zero (New England, Puerto Rico), so the column must stay text.
func zipCol(name string) *column { return codeCol(name, "", 501, 99950, 5) }

func enumCol(name string, pool []string) *column { return &column{name: name, kind: kEnum, pool: pool} }

func textCol(name string, pool, multiPool []string, multi float64) *column {
	return &column{name: name, kind: kText, pool: pool, multiPool: multiPool, multi: uint32(multi * 1024)}
}

// table is one table of the catalogue with its day-1 schema and the drift it undergoes from day 2 on.
type table struct {
	idx  int
	name string
	base []*column

	// drift, applied from the second process date on when Config.Drift is set
	added   *column // appended
	drop    string  // removed
	swap    [2]string
	textish string // numeric column that holds words on some rows

	drifted []*column
	textIdx int // index of textish in drifted, -1 if none
}

// schema returns the columns of a member of day dayIdx (0-based) and the index of the column that may hold
// words instead of numbers (-1 if none).
func (t *table) schema(dayIdx int, drift bool) ([]*column, int) {
	if dayIdx == 0 || !drift {
		return t.base, -1
	}
	return t.drifted, t.textIdx
}

// Text pools. Values with commas, quotes and newlines are on purpose: partners write them.
var (
	cities     = []string{"Seattle, WA", "Portland, OR", "San Francisco, CA", "Boston, MA", "Austin, TX", "Denver, CO", "Chicago, IL", "New York, NY", "Miami, FL", "Honolulu, HI", "Anchorage, AK", "Newark, NJ", "Providence, RI", "Burlington, VT", "San Juan, PR"}
	currencies = []string{"USD", "EUR", "GBP", "JPY", "CAD", "AUD", "MXN", "CHF"}
	iataCodes  = []string{"ATL", "DFW", "DEN", "ORD", "LAX", "JFK", "LAS", "MCO", "MIA", "CLT", "SEA", "PHX", "EWR", "SFO", "IAH", "BOS", "FLL", "MSP", "LGA", "DTW", "PHL", "SLC", "BWI", "DCA", "SAN", "IAD", "TPA", "BNA", "AUS", "MDW", "HNL", "DAL", "PDX", "STL", "RDU", "HOU", "SMF", "MSY", "SJC", "SNA"}
	airports   = []string{"SEA", "JFK", "LHR", "CDG", "NRT", "SYD", "FRA", "YVR", "MEX", "GRU", "DXB", "SIN", "AMS", "ICN"}
	carriers   = []string{"AS", "DL", "UA", "LH", "BA", "AF", "NH", "QF", "EK", "SQ", "KL", "KE"}
	cabins     = []string{"Economy", "Premium Economy", "Business", "First"}
	conditions = []string{"Clear", "Partly cloudy", "Overcast", "Light rain, fog", "Heavy rain", "Drizzle", "Snow, blowing snow", "Thunderstorm, hail", "Haze"}
	hotels     = []string{"Hotel Lumen, Pioneer Square", `The "Grand" Marquis`, "Inn at the Market", "Ace Hotel", "Hyatt Regency, Bellevue", `Bob's "Cozy" Cabins, Lakeside`, "Harborview Suites", "Motel 6 #1234", "The Edgewater", "Hôtel Saint-Paul, Montréal"}
	roomTypes  = []string{"King", "Queen, 2 beds", "Suite", `Studio "city view"`, "Double", "Accessible King"}
	rateNotes  = []string{"Breakfast included", "Non-refundable", "Pay at property, free cancellation", `"Member" rate`, "Parking $25/night", "Resort fee excluded"}
	rateMulti  = []string{"Rate includes breakfast.\nNon-refundable.", "Line 1: \"early bird\"\nLine 2: parking, $25/night"}
	competitor = []string{"ShopCo", "Mega-Mart", "Bargain Barn, Inc.", `Price "Right" Stores`, "Corner Goods", "Northwind Traders"}
	products   = []string{`14" cast-iron skillet`, "USB-C cable, 2 m", "Organic coffee beans 1kg", `LED bulb 60W "warm white"`, "Kids' rain boots, size 11", "Garden hose 50ft", "Noise-cancelling headphones", "Stainless water bottle, 750 ml"}
	promos     = []string{"Buy 2, get 1 free", "Clearance", `"Hot deal"`, "10% off", "Bundle & save", "Online only"}
	promoMulti = []string{"Save 10%\nMembers only", "Price match\nsee store, for details"}
	events     = []string{"Spring Jazz Festival", "Mariners vs. Astros", `"Hamilton" (touring)`, "Tech Expo 2025, Day 1", "Farmers' Market", "Symphony No. 9", "Comedy Night: \"Open Mic\"", "Marathon, 10K & 5K"}
	venues     = []string{"T-Mobile Park", "Climate Pledge Arena", "Paramount Theatre, Seattle", "Moscone Center, Hall A", "Madison Square Garden", "Red Rocks Amphitheatre"}
	eventCats  = []string{"Music", "Sports", "Theatre", "Conference", "Community", "Comedy"}
	eventDesc  = []string{"All ages", "21+ only, ID required", "Outdoor, rain or shine", `Seating is "general admission"`, "Sold by partner, fees apply"}
	eventMulti = []string{"Doors open 6pm.\nAll ages.", "Rain or shine.\nBring a chair, \"blanket\" recommended."}
	statuses   = []string{"active", "inactive", "pending review", "closed, temporary", "open"}
	comments   = []string{"ok", "checked by ops", "value estimated, see source", `partner said "approx"`, "late file", "recount requested", "manual entry"}
	multiNotes = []string{"first line\nsecond line", "note:\n\"verify\" with partner, later"}

	// textTokens replace numbers in the drifting column. None of them parses as a number (no "nan", "inf",
	// "1e5") and none is a null token (no "NULL", "NA", "N/A"): an outside checker counts them as values.
	textTokens = []string{"unknown", "pending", "tbd", "redacted", "missing", "see notes"}
)

// builtins are the hand-written tables, in catalogue order.
func builtins() []*table {
	return []*table{
		{name: "seattle_weather", base: []*column{
			codeCol("station_id", "USW000", 1, 99999, 5).of(30),
			dateCol("obs_date", -1, 0),
			tsCol("observed_at", -24, 0, false),
			floatCol("temp_c", -15, 40, 1),
			floatCol("feels_like_c", -25, 42, 1).after("temp_c", -60, 20).nulls(0.05),
			floatCol("precip_mm", 0, 50, 2).nulls(0.10),
			floatCol("wind_kph", 0, 120, 1),
			intCol("humidity_pct", 5, 100),
			floatCol("pressure_hpa", 960, 1050, 1),
			enumCol("conditions", conditions),
			zipCol("zip").of(60),
		}, added: floatCol("uv_index", 0, 11, 1), textish: "pressure_hpa"},

		{name: "hotel_rates", base: []*column{
			idCol("rate_id"),
			intCol("hotel_id", 100, 9999).of(250),
			enumCol("hotel_name", hotels),
			enumCol("city", cities),
			dateCol("checkin_date", 0, 120),
			intCol("nights", 1, 14),
			floatCol("rate_usd", 59, 1250, 2),
			enumCol("currency", currencies),
			floatCol("taxes_usd", 0, 180, 2).nulls(0.05),
			tsCol("fetched_at", 0, 24, true),
			enumCol("room_type", roomTypes),
			textCol("notes", rateNotes, rateMulti, 0.02).nulls(0.3),
			zipCol("postal_code").of(250),
		}, added: floatCol("resort_fee_usd", 0, 65, 2), textish: "taxes_usd"},

		{name: "flight_fares_intl", base: []*column{
			idCol("fare_id"),
			enumCol("origin", airports),
			enumCol("destination", airports),
			dateCol("depart_date", 1, 330),
			dateCol("return_date", 3, 360).after("depart_date", 2, 30).nulls(0.3),
			enumCol("carrier", carriers),
			floatCol("fare_amount", 79, 9800, 2),
			enumCol("currency", currencies),
			enumCol("cabin", cabins),
			intCol("stops", 0, 3),
			tsCol("fetched_at", 0, 24, true),
			intCol("seats_left", 0, 9).nulls(0.2),
		}, added: floatCol("baggage_fee", 0, 150, 2), textish: "seats_left"},

		{name: "competitor_prices", base: []*column{
			codeCol("sku", "SKU-", 0, 999999, 6).of(1500),
			enumCol("competitor", competitor),
			enumCol("product_name", products),
			floatCol("price", 0.99, 1999.99, 2),
			floatCol("list_price", 0.99, 2499.99, 2).after("price", 0, 30000).nulls(0.1),
			floatCol("discount_pct", -60, 5, 1),
			tsCol("observed_at", -12, 12, false),
			zipCol("store_zip").of(400),
			intCol("in_stock_qty", 0, 500).nulls(0.05),
			textCol("promo_text", promos, promoMulti, 0.03).nulls(0.5),
		}, added: floatCol("shipping_usd", 0, 49.99, 2), textish: "in_stock_qty"},

		{name: "event_calendar", base: []*column{
			idCol("event_id"),
			enumCol("event_name", events),
			enumCol("venue", venues),
			enumCol("city", cities),
			dateCol("on_sale_date", -60, 0),
			tsCol("start_ts", 0, 24*90, false),
			tsCol("end_ts", 2, 24*92, false).after("start_ts", 2*3600, 6*3600).nulls(0.15),
			intCol("expected_attendance", 50, 70000),
			floatCol("ticket_price_min", 0, 150, 2).nulls(0.1),
			floatCol("ticket_price_max", 20, 950, 2).after("ticket_price_min", 500, 40000).nulls(0.1),
			enumCol("category", eventCats),
			textCol("description", eventDesc, eventMulti, 0.04).nulls(0.2),
		}, added: intCol("tickets_remaining", 0, 5000), textish: "expected_attendance"},

		{name: "store_traffic_hourly", base: []*column{
			intCol("store_id", 1001, 1400),
			zipCol("store_zip").of(400),
			{name: "hour_ts", kind: kTimestamp, lo: 0, hi: 24*3600 - 1, hourly: true},
			intCol("visitors", 200, 2500),
			intCol("conversions", 0, 200),
			floatCol("conversion_rate", 0, 0.6, 3),
			floatCol("avg_dwell_min", 0.5, 95, 1),
			floatCol("outdoor_temp_f", -10, 98, 1).nulls(0.02),
			floatCol("sales_usd", 0, 48000, 2),
			intCol("staff_on_shift", 2, 25),
		}, added: intCol("returns_count", 0, 60), textish: "staff_on_shift"},
	}
}

// moreNames are further realistic names; their schemas come from genericPool.
var moreNames = []string{"rental_car_quotes", "parking_occupancy", "fuel_prices_regional", "transit_ridership_daily",
	"restaurant_reservations", "airport_delays", "ski_resort_conditions", "energy_spot_prices",
	"concert_ticket_listings", "cruise_fares"}

// Beyond moreNames, names are <place>_<subject>[_vN] by index: unique, deterministic, independent of the seed.
var (
	namePlaces   = []string{"boston", "denver", "austin", "chicago", "miami", "phoenix", "atlanta", "dallas", "detroit", "tampa", "omaha", "reno"}
	nameSubjects = []string{"parking_rates", "bike_share_trips", "taxi_fares", "hotel_occupancy", "retail_footfall", "air_quality", "venue_capacity", "rideshare_surge"}
)

func tableName(i int) string {
	nb := len(builtinNames)
	if i < nb {
		return builtinNames[i]
	}
	i -= nb
	if i < len(moreNames) {
		return moreNames[i]
	}
	i -= len(moreNames)
	np, ns := len(namePlaces), len(nameSubjects)
	name := namePlaces[i%np] + "_" + nameSubjects[(i/np)%ns]
	if v := i / (np * ns); v > 0 {
		name += "_v" + strconv.Itoa(v+1)
	}
	return name
}

var builtinNames = func() []string {
	var n []string
	for _, t := range builtins() {
		n = append(n, t.name)
	}
	return n
}()

// genericPool is what generated tables pick their columns from.
func genericPool() []*column {
	return []*column{
		intCol("location_id", 1, 5000).of(800),
		zipCol("postal_code").of(500),
		dateCol("report_date", -1, 0),
		tsCol("updated_at", 0, 24, false),
		tsCol("captured_at", -24, 24, true),
		floatCol("price_usd", 0.5, 950, 2).nulls(0.02),
		floatCol("temperature_c", -25, 42, 1).nulls(0.03),
		floatCol("change_pct", -35, 35, 3).nulls(0.05),
		intCol("quantity", 0, 5000).nulls(0.02),
		intCol("capacity", 10, 20000),
		intCol("delta", -500, 500).nulls(0.04),
		enumCol("status", statuses).nulls(0.01),
		enumCol("city", cities),
		textCol("comment", comments, multiNotes, 0.02).nulls(0.4),
		codeCol("external_ref", "REF-", 0, 999999, 6),
		floatCol("latitude", 25, 49, 4),
		floatCol("score", -1, 1, 3).nulls(0.05),
		enumCol("currency", currencies),
		intCol("queue_length", 0, 300).nulls(0.1),
	}
}

// catalogue builds n tables. Schemas of the hand-written tables are fixed; other schemas and the drift choices
// come from the seed.
func catalogue(seed int64, n int, flights bool) []*table {
	bi := builtins()
	if flights {
		bi = append([]*table{flightRecordsTable()}, bi...)
	}
	tables := make([]*table, n)
	for i := range tables {
		var t *table
		if i < len(bi) {
			t = bi[i]
		} else {
			t = genericTable(seed, tableName(i))
		}
		t.idx = i
		planDrift(seed, t, i == 0)
		tables[i] = t
	}
	return tables
}

// flightRecords is the narrow numeric table of Config.FlightRecords.
const flightRecords = "flight_records"

// flightRecordsTable is shaped like public on-time flight data: per row a departure time, two
// delays in minutes and the origin and destination airports.
func flightRecordsTable() *table {
	return &table{name: flightRecords, base: []*column{
		tsCol("dep_time", 0, 24, false),
		intCol("dep_delay", -20, 240),
		intCol("arr_delay", -45, 300),
		enumCol("origin", iataCodes),
		enumCol("dest", iataCodes),
	}, added: intCol("taxi_out", 1, 60), textish: "arr_delay"}
}

func genericTable(seed int64, name string) *table {
	r := newRNG(seed, "schema", name)
	pool := genericPool()
	order := r.perm(len(pool))
	n := 5 + r.intn(8) // 5..12 besides the id; with the fallback float and the drift column at most 15
	t := &table{name: name, base: []*column{idCol("record_id")}}
	hasFloat := false
	for _, j := range order[:n] {
		t.base = append(t.base, pool[j])
		hasFloat = hasFloat || pool[j].kind == kFloat
	}
	if !hasFloat {
		t.base = append(t.base, floatCol("amount", -500, 500, 2))
	}
	t.added = pool[order[n]]
	return t
}

// planDrift decides which drift a table undergoes from day 2: the first table gets every kind so there is always
// some, the others each kind with probability 1/2.
func planDrift(seed int64, t *table, all bool) {
	r := newRNG(seed, "drift", t.name)
	want := func() bool { return r.intn(2) == 0 || all }
	addOK, dropOK, swapOK, textOK := want(), want(), want(), want()

	cols := slices.Clone(t.base)
	t.textIdx = -1
	if !textOK {
		t.textish = ""
	} else if t.textish == "" || indexOf(cols, t.textish) < 0 {
		var cand []string
		for _, c := range cols[1:] {
			if c.numeric() {
				cand = append(cand, c.name)
			}
		}
		t.textish = ""
		if len(cand) > 0 {
			t.textish = cand[r.intn(len(cand))]
		}
	}
	if dropOK {
		var cand []int
		for i, c := range cols[1:] {
			if c.name != t.textish {
				cand = append(cand, i+1)
			}
		}
		i := cand[r.intn(len(cand))]
		t.drop = cols[i].name
		cols = slices.Delete(cols, i, i+1)
	}
	if addOK && t.added != nil {
		cols = append(cols, t.added)
	} else {
		t.added = nil
	}
	if swapOK && len(cols) >= 3 {
		i := 1 + r.intn(len(cols)-1)
		j := 1 + r.intn(len(cols)-2)
		if j >= i {
			j++
		}
		t.swap = [2]string{cols[i].name, cols[j].name}
		cols[i], cols[j] = cols[j], cols[i]
	}
	t.drifted = cols
	if t.textish != "" {
		t.textIdx = indexOf(cols, t.textish)
	}
}

func indexOf(cols []*column, name string) int {
	return slices.IndexFunc(cols, func(c *column) bool { return c.name == name })
}
