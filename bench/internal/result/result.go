// Package result holds the JSON the load generator prints for one scenario
// and the driver collects into a run, so both sides agree on one schema.
package result

// Scenario is what one loadgen invocation measured against one server.
type Scenario struct {
	Name      string `json:"name"`      // idle, broadcast, ... (the driver may rename: sweep, fanout, polling, slow)
	Server    string `json:"server"`    // label given with -label (go, node)
	Transport string `json:"transport"` // websocket or polling
	Clients   int    `json:"clients"`   // connected clients (the largest step for idle)
	// Namespaces the clients were spread over (-namespaces; 0: all in "/").
	Namespaces int `json:"namespaces,omitempty"`
	MsgBytes   int `json:"msgBytes"` // length of each chat message string

	RSS0KB      int64 `json:"rss0KB"`                // server RSS before the first client
	Goroutines0 int   `json:"goroutines0,omitempty"` // server goroutines before the first client (pprof only)

	Ramps []Ramp `json:"ramps,omitempty"`
	Idle  []Idle `json:"idle,omitempty"`
	// Disconnect is the idle scenario's end: every client leaving at once.
	Disconnect *Disconnect `json:"disconnect,omitempty"`
	Points     []Point     `json:"points,omitempty"`
	Slow       *Slow       `json:"slow,omitempty"`
	// SearchP99Ms is the p99 bound of a -search run: the points climbed a
	// ladder of rates until one was incomplete or over this bound, then
	// bisected between the last that passed and the first that failed.
	SearchP99Ms float64 `json:"searchP99Ms,omitempty"`

	WallS             float64  `json:"wallS"`             // whole invocation
	LoadgenCPUS       float64  `json:"loadgenCPUS"`       // whole invocation, getrusage(RUSAGE_SELF)
	LoadgenMaxRSSKB   int64    `json:"loadgenMaxRSSKB"`   // getrusage maxrss
	LoadgenGoroutines int      `json:"loadgenGoroutines"` // at the peak of the run
	Profiles          []string `json:"profiles,omitempty"`
	Errors            []string `json:"errors,omitempty"`
}

// Ramp is one batch of connections opened as fast as the concurrency allows.
type Ramp struct {
	From        int     `json:"from"`
	To          int     `json:"to"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	PerSec      float64 `json:"perSec"`   // (To-From)/Seconds: the connect rate
	Failures    int     `json:"failures"` // dial attempts that failed (retried)
	Missing     int     `json:"missing"`  // clients never connected
	ServerCPUS  float64 `json:"serverCPUS"`
	LoadgenCPUS float64 `json:"loadgenCPUS"`
}

// Disconnect is what the server spent when Clients clients left at once (a
// network outage, a restarting proxy): its CPU from the first close until
// it was quiet again.
type Disconnect struct {
	Clients      int     `json:"clients"`
	CloseSeconds float64 `json:"closeSeconds"` // the load generator closing them all
	BusySeconds  float64 `json:"busySeconds"`  // from the first close to the server's last CPU tick
	ServerCPUS   float64 `json:"serverCPUS"`
}

// Idle is the server's footprint with Clients idle WebSocket clients.
type Idle struct {
	Clients   int     `json:"clients"`
	RSSKB     int64   `json:"rssKB"`
	PerConnKB float64 `json:"perConnKB"` // (RSSKB - RSS0KB) / Clients
	// SlopeKB is the marginal cost of a connection: the RSS growth from the
	// previous step divided by the connections added (from 0 for the first
	// step, where it equals PerConnKB). It excludes the fixed cost of the
	// process, so it is what a projection to more connections uses.
	SlopeKB          float64 `json:"slopeKB"`
	ServerCPUPercent float64 `json:"serverCPUPercent"`
	Goroutines       int     `json:"goroutines,omitempty"`
	GoroutinesPerCon float64 `json:"goroutinesPerConn,omitempty"`
}

// Point is one broadcast load point: Senders clients send Rate messages per
// second in total for DurationS, every connected client receives each one.
type Point struct {
	Rate      float64 `json:"rate"`
	Senders   int     `json:"senders"`
	Receivers int     `json:"receivers"` // clients whose deliveries are measured
	DurationS float64 `json:"durationS"`

	Sent      int64 `json:"sent"`
	Expected  int64 `json:"expected"`  // sent × receivers
	Delivered int64 `json:"delivered"` // unique deliveries
	Lost      int64 `json:"lost"`      // Expected - Delivered at the end of the drain window
	// Late is how many of the Lost arrived after the drain window, before the
	// run ended (overload, not loss); Disconnected counts receivers whose
	// session ended during the point.
	Late         int64 `json:"late"`
	Disconnected int   `json:"disconnected"`
	Duplicated   int64 `json:"duplicated"`
	Reordered    int64 `json:"reordered"` // arrived after a later message of the same sender
	Complete     bool  `json:"complete"`  // Delivered == Expected, no duplicates, no reordering
	// One order per node: every receiver that got all Sent messages should
	// have seen them in the same sequence. OrderDiffers counts the complete
	// receivers whose sequence differs from the most common one, OrderGroups
	// the distinct sequences among them (1 when all agree), OrderIncomplete
	// the receivers left out of the comparison because they missed messages
	// (those are counted in Lost).
	OrderDiffers    int     `json:"orderDiffers"`
	OrderGroups     int     `json:"orderGroups"`
	OrderIncomplete int     `json:"orderIncomplete"`
	DrainS          float64 `json:"drainS"` // time after the last send until all arrived (or the drain limit)
	SendErrors      int     `json:"sendErrors"`
	// SendLagMaxMs is how far the senders fell behind their schedule at worst
	// (a server that stops reading a sender's socket shows up here; latency is
	// measured from the actual send).
	SendLagMaxMs float64 `json:"sendLagMaxMs"`

	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P99Ms  float64 `json:"p99Ms"`
	P999Ms float64 `json:"p999Ms"`
	MaxMs  float64 `json:"maxMs"`

	OfferedPerSec  float64 `json:"offeredPerSec"`  // Rate × Receivers
	AchievedPerSec float64 `json:"achievedPerSec"` // Delivered / (last delivery - first send)

	ServerCPUS             float64 `json:"serverCPUS"`
	ServerSysS             float64 `json:"serverSysS"` // of ServerCPUS, in the kernel (stime)
	ServerCPUPercent       float64 `json:"serverCPUPercent"`
	ServerCPUPerDeliveryUs float64 `json:"serverCPUPerDeliveryUs"`
	ServerRSSKB            int64   `json:"serverRSSKB"`
	LoadgenCPUS            float64 `json:"loadgenCPUS"`
	LoadgenCPUPercent      float64 `json:"loadgenCPUPercent"`
}

// Slow reports the clients that stopped reading during a broadcast point.
type Slow struct {
	Clients          int   `json:"clients"`
	ReadBufBytes     int   `json:"readBufBytes"`
	Disconnected     int   `json:"disconnected"`   // the server closed them
	StillConnected   int   `json:"stillConnected"` // still open after the drain window
	ServerRSSStartKB int64 `json:"serverRSSStartKB"`
	ServerRSSEndKB   int64 `json:"serverRSSEndKB"`
}
