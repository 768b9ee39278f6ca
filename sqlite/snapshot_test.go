package sqlite

import (
	"strconv"
	"testing"
	"time"

	"github.com/socius/socius"
)

// TestSnapshotHoldsWAL checks what a view costs and that its Close ends the cost: while
// it is open, no checkpoint copies the frames committed after its moment (its reads
// need the database file as it was), and once it is closed the checkpointer copies
// them all after the next commit.
func TestSnapshotHoldsWAL(t *testing.T) {
	s := newStore(t)
	if err := s.CreateSite(t.Context(), &socius.Site{APIKey: "3_site", Secret: "c2VjcmV0LTAxMjM0NTY3ODlhYmM=", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	v, err := s.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for i := range 20 {
		loginUsers(t, s, "3_site", "u"+strconv.Itoa(i))
	}
	time.Sleep(10 * checkpointEvery)
	if mx, done := walFrames(t, s); done >= mx {
		t.Fatalf("with a view open, %d of %d WAL frames backfilled: the commits after its moment were copied under it", done, mx)
	}
	if users, err := v.Users(t.Context(), "3_site", "", 100); err != nil || len(users) != 0 {
		t.Fatalf("view: Users = %d users, %v; want none, as at its moment", len(users), err)
	}

	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	// The checkpointer runs after commits: the next one.
	loginUsers(t, s, "3_site", "after")
	deadline := time.Now().Add(5 * time.Second)
	for {
		mx, done := walFrames(t, s)
		if mx > 0 && done == mx {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d WAL frames backfilled 5 s after the view closed", done, mx)
		}
		time.Sleep(checkpointEvery)
	}
}
