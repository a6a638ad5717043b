package fedcommittee

import (
	"cmp"
	"slices"
)

// Scores, orderings and counts. Every function here is pure and orders
// deterministically, so every peer computes the same result.

// median of a non-empty list: the middle value, or the mean of the two
// middle values; the input is sorted in place, so the result is the same on
// every peer.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// better reports whether score a beats score b under the model's metric.
func better(m *Model, a, b float64) bool {
	if m.Metric.HigherIsBetter {
		return a > b
	}
	return a < b
}

// reached reports whether score s meets the stopping target.
func reached(m *Model, s, target float64) bool {
	return s == target || better(m, s, target)
}

// improves reports whether score s beats best by more than minDelta.
func improves(m *Model, s, best, minDelta float64) bool {
	if m.Metric.HigherIsBetter {
		return s > best+minDelta
	}
	return s < best-minDelta
}

// bestFirst compares two scores so that the better one under the model's
// metric sorts first.
func bestFirst(m *Model, a, b float64) int {
	if m.Metric.HigherIsBetter {
		return cmp.Compare(b, a)
	}
	return cmp.Compare(a, b)
}

// reputation is a Laplace-smoothed acceptance ratio: a new identity starts at
// 0.5 and moves towards its observed acceptance rate.
func reputation(accepted, rejected int64) float64 {
	return float64(accepted+1) / float64(accepted+rejected+2)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
