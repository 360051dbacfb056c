package reading

import "testing"

func BenchmarkEncode(b *testing.B) {
	for _, e := range Encodings {
		b.Run(string(e), func(b *testing.B) {
			b.ReportAllocs()
			r := sample
			for i := range b.N {
				r.Seq = uint64(i)
				if _, err := Encode(r, e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, e := range Encodings {
		p, err := Encode(sample, e)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(string(e), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for range b.N {
				if _, err := Decode(e.ContentType(), p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
