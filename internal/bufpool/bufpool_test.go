package bufpool

import "testing"

func TestGetSizes(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 1000, 64 << 10, 64<<10 + 1, 1 << 20, 3 << 20, 16 << 20, 16<<20 + 1} {
		b := Get(n)
		if len(b) != 0 || cap(b) < n {
			t.Fatalf("Get(%d): len %d cap %d", n, len(b), cap(b))
		}
		if c := class(n); c >= 0 && cap(b) != 1<<(c+minShift) {
			t.Fatalf("Get(%d): cap %d is not its class size %d", n, cap(b), 1<<(c+minShift))
		}
		Put(b)
	}
}

func TestClass(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ n, want int }{
		{0, -1}, {-5, -1}, {1, -1}, {64<<10 - 1, 0}, {64 << 10, 0}, {64<<10 + 1, 1},
		{1 << 20, 4}, {16 << 20, maxShift - minShift}, {16<<20 + 1, -1},
	} {
		if got := class(tc.n); got != tc.want {
			t.Errorf("class(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

// A buffer put back is handed out again for the same class (sync.Pool may
// drop it at a collection, so the test retries a few times).
func TestReuse(t *testing.T) {
	for range 10 {
		b := Get(1 << 20)[:1]
		b[0] = 42
		Put(b)
		if r := Get(1<<20 - 7)[:1]; r[0] == 42 {
			return
		}
	}
	t.Fatal("a returned 1 MiB buffer was never reused")
}

// Foreign capacities never enter a pool: a class must only hold buffers of
// its exact size, or Get could return one that is too small.
func TestPutForeign(t *testing.T) {
	Put(make([]byte, 0, 3<<20)) // between classes
	for range 10 {
		if b := Get(4 << 20); cap(b) != 4<<20 {
			t.Fatalf("Get(4 MiB) returned cap %d", cap(b))
		}
	}
}
