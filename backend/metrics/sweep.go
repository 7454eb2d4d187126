package metrics

import (
	"math"
	"math/bits"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// kahan is a Neumaier-compensated float64 sum: its error stays at a few ulps of the result however many
// terms go in, so sums over tens of millions of pixels keep the 1e-9 agreement the metrics promise.
type kahan struct{ s, c float64 }

func (k *kahan) add(x float64) {
	t := k.s + x
	if math.Abs(k.s) >= math.Abs(x) {
		k.c += (k.s - t) + x
	} else {
		k.c += (x - t) + k.s
	}
	k.s = t
}

func (k *kahan) value() float64 { return k.s + k.c }

// u128 is an unsigned 128-bit accumulator for exact integer sums of products.
type u128 struct{ hi, lo uint64 }

func (u *u128) addMul(a, b uint64) {
	hi, lo := bits.Mul64(a, b)
	var carry uint64
	u.lo, carry = bits.Add64(u.lo, lo, 0)
	u.hi, _ = bits.Add64(u.hi, hi, carry)
}

func (u u128) float() float64 { return float64(u.hi)*0x1p64 + float64(u.lo) }

// sweep consumes the threshold groups from the highest score down and accumulates every metric at once.
// P and N (positives, negatives) and R (regions) are known before the sweep starts.
type sweep struct {
	P, N, R  int64
	lim      float64
	tp, fp   int64
	distinct int64
	lastThr  float64
	// fpFlushed is the FP count up to which the run sums (AUROC, PRO area) are accumulated: groups with
	// no positives and no curve point are only counted, and the run they form is added in one product.
	fpFlushed int64

	aucTwice u128  // sum of dFP * (TP_prev + TP): twice the ROC area times P*N, exact
	apSum    kahan // sum of dTP * precision
	f1Num    int64 // best F1 = f1Num / f1Den (2TP / (TP + FP + P))
	f1Den    int64
	f1Thr    float64
	hasF1    bool

	proOn   bool  // regions and normal pixels exist and the limit is not yet passed
	fpLimit int64 // the largest FP count whose FPR (as float64 FP/N) is <= lim
	proSum  kahan // sum over covered defect pixels of 1/area: PRO times R
	proArea kahan // sum of (S + S_prev) * dFP, i.e. the trapezoid area times 2*N*R
	proCorr float64
	proDone bool

	curves            bool
	roc, pr, proCurve curveBuilder
}

func newSweep(P, N, R int64, lim float64, curves bool) *sweep {
	s := &sweep{P: P, N: N, R: R, lim: lim, curves: curves}
	s.proOn = R > 0 && N > 0
	if s.proOn {
		// The same test as float64(fp)/float64(N) <= lim, decided once: start from the rounded product
		// and step to the exact boundary.
		f := int64(lim * float64(N))
		for f > 0 && float64(f)/float64(N) > lim {
			f--
		}
		for f < N && float64(f+1)/float64(N) <= lim {
			f++
		}
		s.fpLimit = f
	}
	if curves {
		step2 := 2 / float64(sm.MaxCurvePoints-4)
		step1 := 1 / float64(sm.MaxCurvePoints-4)
		s.roc = newCurveBuilder(float64(N)*step2, float64(P)*step2)
		s.pr = newCurveBuilder(float64(P)*step1, math.Inf(1))
		s.pr.nextA = 0
		s.proCurve = newCurveBuilder(lim*float64(N)*step2, float64(R)*step2)
		if N > 0 && P > 0 {
			s.roc.keep(0, 0, 0, 0, 0, false)
		}
		if s.proOn {
			s.proCurve.keep(0, 0, 0, 0, 0, false)
		}
	}
	return s
}

// step enters all samples whose score equals thr: dtp positives, dfp negatives, and dpro, the sum of
// 1/area over the regions of the positives.
//
// Most groups hold only negatives: over such a run TP and PRO stay constant, the AUROC and PRO-area terms
// are TP or PRO times the FP growth, and F1 only falls (so its maximum is always at a group with
// positives). Those groups are therefore only counted here and the run is added at the next full step.
func (s *sweep) step(thr float64, dtp, dfp int64, dpro kahan) {
	s.distinct++
	fpBefore := s.fp
	s.fp += dfp
	prevThr := s.lastThr
	s.lastThr = thr
	if dtp == 0 && dpro.s == 0 && dpro.c == 0 && (!s.proOn || s.fp <= s.fpLimit) &&
		(!s.curves || (float64(s.fp) < s.roc.nextA && (!s.proOn || float64(s.fp) < s.proCurve.nextA))) {
		return
	}
	S0 := s.proSum.value()
	s.flush(fpBefore, S0)
	prevTP := s.tp
	s.tp += dtp
	if dfp > 0 {
		s.aucTwice.addMul(uint64(dfp), uint64(prevTP+s.tp))
	}
	s.fpFlushed = s.fp
	if dtp > 0 {
		s.apSum.add(float64(dtp) * float64(s.tp) / float64(s.tp+s.fp))
		num, den := 2*s.tp, s.tp+s.fp+s.P
		// >= so that ties move to the lower threshold, which comes later in the sweep.
		if !s.hasF1 || cmpFrac(num, den, s.f1Num, s.f1Den) >= 0 {
			s.f1Num, s.f1Den, s.f1Thr, s.hasF1 = num, den, thr, true
		}
		if s.curves {
			if a := float64(s.tp); a >= s.pr.nextA {
				s.pr.keep(a, 0, a/float64(s.P), float64(s.tp)/float64(s.tp+s.fp), thr, true)
			}
		}
	}
	if s.curves && s.N > 0 && s.P > 0 {
		if a, b := float64(s.fp), float64(s.tp); a >= s.roc.nextA || b >= s.roc.nextB {
			s.roc.keep(a, b, a/float64(s.N), b/float64(s.P), thr, true)
		}
	}
	if dpro.s != 0 || dpro.c != 0 {
		s.proSum.add(dpro.s)
		s.proSum.add(dpro.c)
	}
	if !s.proOn {
		return
	}
	S := s.proSum.value()
	if s.fp <= s.fpLimit {
		if dfp > 0 {
			s.proArea.add((S + S0) * float64(dfp))
		}
		if s.curves && (float64(s.fp) >= s.proCurve.nextA || S >= s.proCurve.nextB) {
			s.proCurve.keep(float64(s.fp), S, float64(s.fp)/float64(s.N), S/float64(s.R), thr, true)
		}
		return
	}
	// First point past the limit: cut the last trapezoid at the limit.
	px, py := float64(fpBefore)/float64(s.N), S0/float64(s.R)
	x, y := float64(s.fp)/float64(s.N), S/float64(s.R)
	yi := py
	if px != s.lim {
		yi = py + (y-py)*(s.lim-px)/(x-px)
		s.proCorr = 0.5 * (yi + py) * (s.lim - px)
	}
	if s.curves {
		// The last point inside the limit, then the cut.
		if s.proCurve.keptA != float64(fpBefore) || s.proCurve.keptB != S0 {
			s.proCurve.keep(float64(fpBefore), S0, px, py, prevThr, fpBefore > 0 || S0 > 0)
		}
		if px != s.lim {
			s.proCurve.keep(0, 0, s.lim, yi, 0, false)
		}
	}
	s.proDone = true
	s.proOn = false
}

// quietUntil returns the largest FP count up to which groups of negatives only need no full step: they
// neither pass the PRO limit nor reach the next curve point.
func (s *sweep) quietUntil() int64 {
	q := int64(math.MaxInt64)
	if s.proOn {
		q = s.fpLimit
	}
	if s.curves {
		next := s.roc.nextA
		if s.proOn {
			next = min(next, s.proCurve.nextA)
		}
		if next < float64(q) {
			q = int64(math.Ceil(next)) - 1 // fp < next, for integer fp
		}
	}
	return q
}

// quiet enters groups of negatives only, all below quietUntil: dfp negatives in groups distinct scores, the
// lowest at thr.
func (s *sweep) quiet(dfp, groups int64, thr float64) {
	s.fp += dfp
	s.distinct += groups
	s.lastThr = thr
}

// flush adds the run of negative-only groups from fpFlushed to fp, over which TP and the PRO sum S were
// constant.
func (s *sweep) flush(fp int64, S float64) {
	run := fp - s.fpFlushed
	if run <= 0 {
		return
	}
	s.aucTwice.addMul(uint64(run), uint64(2*s.tp))
	if s.proOn {
		s.proArea.add(2 * S * float64(run))
	}
	s.fpFlushed = fp
}

// finish closes the sweep: the last run, and the curve end points that thinning may have skipped.
func (s *sweep) finish() {
	s.flush(s.fp, s.proSum.value())
	if !s.curves {
		return
	}
	if s.N > 0 && s.P > 0 && (s.roc.keptA != float64(s.fp) || s.roc.keptB != float64(s.tp)) {
		s.roc.keep(float64(s.fp), float64(s.tp), 1, 1, s.lastThr, true)
	}
	if s.P > 0 && s.pr.keptA != float64(s.tp) {
		s.pr.keep(float64(s.tp), 0, 1, float64(s.tp)/float64(s.tp+s.fp), s.lastThr, true)
	}
	if s.proOn && (s.proCurve.keptA != float64(s.fp) || s.proCurve.keptB != s.proSum.value()) {
		// The limit was never passed (limit 1): end on the last point.
		S := s.proSum.value()
		s.proCurve.keep(float64(s.fp), S, float64(s.fp)/float64(s.N), S/float64(s.R), s.lastThr, true)
	}
	s.curves = false
}

// cmpFrac compares a/b with c/d for positive b and d, exactly.
func cmpFrac(a, b, c, d int64) int {
	h1, l1 := bits.Mul64(uint64(a), uint64(d))
	h2, l2 := bits.Mul64(uint64(c), uint64(b))
	switch {
	case h1 != h2:
		if h1 < h2 {
			return -1
		}
		return 1
	case l1 != l2:
		if l1 < l2 {
			return -1
		}
		return 1
	}
	return 0
}

func ptr(v float64) *float64 { return &v }

func (s *sweep) auroc() *float64 {
	if s.P == 0 || s.N == 0 {
		return nil
	}
	return ptr(s.aucTwice.float() / (2 * float64(s.P) * float64(s.N)))
}

func (s *sweep) ap() *float64 {
	if s.P == 0 {
		return nil
	}
	return ptr(s.apSum.value() / float64(s.P))
}

func (s *sweep) f1() (f1, thr *float64) {
	if s.P == 0 || !s.hasF1 {
		return nil, nil
	}
	return ptr(float64(s.f1Num) / float64(s.f1Den)), ptr(s.f1Thr)
}

func (s *sweep) aupro() *float64 {
	if s.R == 0 || s.N == 0 {
		return nil
	}
	area := s.proArea.value()/(2*float64(s.N)*float64(s.R)) + s.proCorr
	return ptr(math.Min(area/s.lim, 1))
}

func (s *sweep) undefinedAUROC(what string) string {
	switch {
	case s.P == 0 && s.N == 0:
		return "no " + what
	case s.P == 0:
		return "no anomalous " + what
	case s.N == 0:
		return "no normal " + what
	}
	return ""
}

func (s *sweep) undefinedAP(what string) string { return "no anomalous " + what }

func (s *sweep) undefinedPRO() string {
	if s.R == 0 {
		return "no ground-truth defect regions"
	}
	return "no normal pixels"
}

// curveBuilder thins a curve that is monotone in its two raw coordinates a and b (counts or sums): the
// sweep keeps a point only when a or b has grown by its step since the last kept point, so a curve has at
// most (1/step of a + 1/step of b) + a few points, and the test per threshold is two comparisons.
type curveBuilder struct {
	stepA, stepB float64
	nextA, nextB float64
	keptA, keptB float64
	c            sm.Curve
}

func newCurveBuilder(stepA, stepB float64) curveBuilder {
	// Nothing is due until the first keep; a builder that never keeps never stops the fast path.
	return curveBuilder{stepA: stepA, stepB: stepB, keptA: -1, keptB: -1, nextA: math.Inf(1), nextB: math.Inf(1)}
}

// keep appends the point (x, y) reached at raw coordinates (a, b) and threshold thr (has false: reached by
// no threshold).
func (b *curveBuilder) keep(a, bb, x, y, thr float64, has bool) {
	b.c.X = append(b.c.X, x)
	b.c.Y = append(b.c.Y, y)
	var p *float64
	if has {
		p = &thr
	}
	b.c.Threshold = append(b.c.Threshold, p)
	b.keptA, b.keptB = a, bb
	b.nextA, b.nextB = a+b.stepA, bb+b.stepB
}

func (b *curveBuilder) curve() sm.Curve {
	c := b.c
	if c.X == nil {
		c = sm.Curve{X: []float64{}, Y: []float64{}, Threshold: []*float64{}}
	}
	return thin(c, sm.MaxCurvePoints)
}

// thin keeps at most max points, evenly spaced by index with both ends kept; a safety net for curves that
// are not monotone (precision).
func thin(c sm.Curve, max int) sm.Curve {
	n := len(c.X)
	if n <= max {
		return c
	}
	out := sm.Curve{X: make([]float64, max), Y: make([]float64, max), Threshold: make([]*float64, max)}
	for i := 0; i < max; i++ {
		j := int(int64(i) * int64(n-1) / int64(max-1))
		out.X[i], out.Y[i], out.Threshold[i] = c.X[j], c.Y[j], c.Threshold[j]
	}
	return out
}
