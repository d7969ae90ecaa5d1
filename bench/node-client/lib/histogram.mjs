// A latency histogram laid out exactly like the Rust tool's HDR histogram (values
// 1..600,000,000 µs, 3 significant digits: 2,048 sub-buckets per power of two), so the
// coordinator can import the recorded `[value, count]` pairs into its own histogram
// and compute the same percentiles and spectrum as for the Rust workers.

/** Highest value recorded (µs: ten minutes); larger values are clamped. */
export const HISTOGRAM_MAX = 600_000_000;
const SUB_BUCKET_BITS = 11; // 2,048 sub-buckets: 3 significant decimal digits
const HALF = 1 << (SUB_BUCKET_BITS - 1);
const SLOTS = (31 - SUB_BUCKET_BITS + 2) * HALF; // enough for HISTOGRAM_MAX < 2^30

function bitLength(value) {
  return 32 - Math.clz32(value);
}

function indexOf(value) {
  const bucket = Math.max(0, bitLength(value) - SUB_BUCKET_BITS);
  const sub = value >>> bucket;
  return bucket === 0 ? sub : ((bucket + 1) << (SUB_BUCKET_BITS - 1)) + (sub - HALF);
}

/** The lowest value that lands in slot `index`. */
function lowestOf(index) {
  if (index < 2 * HALF) return index;
  const bucket = (index >>> (SUB_BUCKET_BITS - 1)) - 1;
  const sub = (index & (HALF - 1)) + HALF;
  return sub * 2 ** bucket;
}

/** The highest value that lands in slot `index` (what HDR's quantiles answer). */
function highestOf(index) {
  if (index < 2 * HALF) return index;
  const bucket = (index >>> (SUB_BUCKET_BITS - 1)) - 1;
  return lowestOf(index) + 2 ** bucket - 1;
}

export class Histogram {
  constructor() {
    this.counts = new Float64Array(SLOTS);
    this.count = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = 0;
  }

  record(value) {
    const v = Math.min(HISTOGRAM_MAX, Math.max(1, Math.round(value)));
    this.counts[indexOf(v)] += 1;
    this.count += 1;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /** The value at quantile `q` (0..1), as HDR answers it: the slot's highest value. */
  valueAt(q) {
    if (this.count === 0) return 0;
    const wanted = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < SLOTS; i += 1) {
      seen += this.counts[i];
      if (seen >= wanted) return Math.min(highestOf(i), this.max);
    }
    return this.max;
  }

  /** `[value, count]` pairs of the non-empty slots (each slot by its lowest value). */
  recorded() {
    const pairs = [];
    for (let i = 0; i < SLOTS; i += 1) {
      if (this.counts[i] > 0) pairs.push([lowestOf(i), this.counts[i]]);
    }
    return pairs;
  }

  summary() {
    if (this.count === 0) {
      return { count: 0, min: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0, recorded: [] };
    }
    return {
      count: this.count,
      min: this.min,
      p50: this.valueAt(0.5),
      p90: this.valueAt(0.9),
      p99: this.valueAt(0.99),
      p999: this.valueAt(0.999),
      max: this.max,
      mean: this.sum / this.count,
      recorded: this.recorded(),
    };
  }
}
