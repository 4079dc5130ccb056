using Quantize.Core.Quantization;
using Quantize.Kernels.Models;
using Quantize.Kernels.Quantization;

namespace Quantize.Core.Calibration;

/// <summary>The float range a tensor's quantization covers: <c>Min &lt;= 0 &lt;= Max</c>, so that 0 is representable.</summary>
/// <param name="Min">The lower end (at most 0).</param>
/// <param name="Max">The upper end (at least 0).</param>
public readonly record struct ActivationRange(float Min, float Max)
{
    /// <inheritdoc />
    public override string ToString() => FormattableString.Invariant($"[{Min:G9}, {Max:G9}]");
}

/// <summary>
/// Chooses a tensor's quantization range from its <see cref="TensorStatistics"/>, one function per
/// <see cref="CalibrationMethod"/>. Every range lies within the values seen (widened to include 0).
/// </summary>
public static class RangeSelection
{
    /// <summary>The range <paramref name="options"/>' calibration method chooses.</summary>
    public static ActivationRange Select(TensorStatistics statistics, QuantizationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.CalibrationMethod switch
        {
            CalibrationMethod.MinMax => MinMax(statistics),
            CalibrationMethod.Percentile => Percentile(statistics, options.Percentile, options.SymmetricActivations),
            CalibrationMethod.Entropy => Entropy(statistics, options.ActivationType, options.SymmetricActivations),
            CalibrationMethod.Mse => Mse(statistics, options.ActivationType, options.SymmetricActivations),
            var other => throw new ArgumentException($"Calibration method {other} is not known.", nameof(options)),
        };
    }

    /// <summary>The smallest and largest values seen.</summary>
    public static ActivationRange MinMax(TensorStatistics statistics)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        return Clipped(statistics, double.NegativeInfinity, double.PositiveInfinity);
    }

    /// <summary>
    /// The range that keeps <paramref name="percentile"/> percent of the values. Symmetric: the magnitude
    /// <c>T</c> that at least that share of <c>|x|</c> does not exceed, giving <c>[-T, T]</c>. Otherwise
    /// the two tails are cut evenly: the nearest-rank quantiles at <c>(100 - p) / 200</c> and
    /// <c>1 - (100 - p) / 200</c>. Each end is the edge of the histogram bin holding that quantile,
    /// so it is at most one bin width beyond the exact quantile; the result is clipped to the values seen.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="percentile"/> is not in (0, 100].</exception>
    public static ActivationRange Percentile(TensorStatistics statistics, double percentile, bool symmetric)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        if (!(percentile > 0 && percentile <= 100))
            throw new ArgumentOutOfRangeException(nameof(percentile), percentile, "The percentile must be in (0, 100].");
        if (statistics.Count == 0) return new ActivationRange(0, 0);
        double width = statistics.BinWidth;
        if (symmetric)
        {
            long[] magnitudes = statistics.MagnitudeCounts();
            int bin = BinOfRank(magnitudes, Rank(percentile / 100, statistics.Count));
            double threshold = (bin + 1) * width;
            return Clipped(statistics, -threshold, threshold);
        }
        // The signed histogram in ascending order: negative bins from the largest magnitude down, then the others.
        double tail = (100 - percentile) / 200;
        var (lowBin, lowNegative) = SignedBinOfRank(statistics, Rank(tail, statistics.Count));
        var (highBin, highNegative) = SignedBinOfRank(statistics, Rank(1 - tail, statistics.Count));
        double low = lowNegative ? -(lowBin + 1) * width : lowBin * width;
        double high = highNegative ? -highBin * width : (highBin + 1) * width;
        return Clipped(statistics, low, high);
    }

    /// <summary>
    /// TensorRT's entropy calibration: the threshold <c>T</c> (a bin edge) whose clipped, quantized magnitude
    /// distribution has the smallest KL divergence from the float one. For each candidate number of bins
    /// <c>t</c>, the reference <c>P</c> is the first <c>t</c> bins of <c>|x|</c> with everything beyond added
    /// to the last; <c>Q</c> merges those <c>t</c> bins (without the outliers) into the quantized levels and
    /// spreads each level evenly over its bins where <c>P</c> is non-zero. The levels are those of one side of
    /// <paramref name="activationType"/>: 128, or all 256 when the values have one sign and the quantization is
    /// asymmetric. Exact zeros are left out: they quantize without error. The range is <c>[-T, T]</c>
    /// clipped to the values seen.
    /// </summary>
    public static ActivationRange Entropy(TensorStatistics statistics, TensorElementType activationType, bool symmetric)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        if (statistics.Count == 0) return new ActivationRange(0, 0);
        int levels = StepsOnOneSide(statistics, activationType, symmetric) + 1;
        long[] counts = statistics.MagnitudeCounts();
        // Exact zeros (Relu's half of the values) quantize without error; as a spike in bin 0 they would read as
        // a loss of every level that merges bin 0 with others, and push the threshold down.
        counts[0] -= statistics.ZeroCount;
        long n = statistics.Count - statistics.ZeroCount;
        if (n == 0) return MinMax(statistics);
        int used = UsedBins(counts);
        if (used <= levels) return MinMax(statistics); // the levels resolve the whole histogram: nothing to clip

        // Prefix sums over bins [0, j): counts, non-empty bins, and c ln c.
        var total = new long[used + 1];
        var nonEmpty = new int[used + 1];
        var entropyTerms = new double[used + 1];
        for (int j = 0; j < used; j++)
        {
            total[j + 1] = total[j] + counts[j];
            nonEmpty[j + 1] = nonEmpty[j] + (counts[j] > 0 ? 1 : 0);
            entropyTerms[j + 1] = entropyTerms[j] + XLogX(counts[j]);
        }

        double logN = Math.Log(n);
        int best = used;
        double bestDivergence = double.PositiveInfinity;
        for (int t = levels; t <= used; t++)
        {
            long inside = total[t];
            if (inside == 0) continue;
            long outliers = n - inside;
            long last = counts[t - 1] + outliers; // P's last bin
            double logInside = Math.Log(inside);
            double divergence = 0;
            for (int level = 0; level < levels && divergence < double.PositiveInfinity; level++)
            {
                int start = (int)(((long)level * t + levels - 1) / levels);
                int end = (int)(((long)(level + 1) * t + levels - 1) / levels);
                long quantized = total[end] - total[start]; // Q's mass, without outliers
                long reference = quantized;                   // P's mass
                int support = nonEmpty[end] - nonEmpty[start];
                double sumPLogP = entropyTerms[end] - entropyTerms[start];
                if (end == t)
                {
                    reference += outliers;
                    support += (counts[t - 1] > 0 ? 0 : 1) * (last > 0 ? 1 : 0);
                    sumPLogP += XLogX(last) - XLogX(counts[t - 1]);
                }
                if (reference == 0) continue;
                if (quantized == 0)
                {
                    divergence = double.PositiveInfinity; // P has mass Q cannot represent
                    break;
                }
                // sum over the level's bins of (p/n) ln((p/n) / (quantized / (support * inside)))
                divergence += sumPLogP - reference * (logN + Math.Log(quantized) - Math.Log(support) - logInside);
            }
            divergence /= n;
            if (divergence < bestDivergence)
            {
                bestDivergence = divergence;
                best = t;
            }
        }
        double threshold = best * statistics.BinWidth;
        return Clipped(statistics, -threshold, threshold);
    }

    /// <summary>
    /// The threshold <c>T</c> (a bin edge) that minimizes the expected squared quantization error over the
    /// histogram: values beyond <c>T</c> are clipped to it (error measured from each bin's centre), values
    /// inside round to the nearest step (error step²/12; exact zeros none). The range is <c>[-T, T]</c>
    /// clipped to the values seen, and the step follows <paramref name="activationType"/>: that range over
    /// 255 steps, or its larger side over 127 when symmetric.
    /// </summary>
    public static ActivationRange Mse(TensorStatistics statistics, TensorElementType activationType, bool symmetric)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        if (statistics.Count == 0) return new ActivationRange(0, 0);
        var integers = QuantizedRange.Of(activationType);
        int half = SymmetricHalf(integers);
        long[] counts = statistics.MagnitudeCounts();
        int used = UsedBins(counts);
        double width = statistics.BinWidth;

        // Suffix sums over bins [t, used) in units of the bin width: count, count x centre, count x centre².
        var s0 = new double[used + 1];
        var s1 = new double[used + 1];
        var s2 = new double[used + 1];
        for (int k = used - 1; k >= 0; k--)
        {
            double centre = k + 0.5;
            s0[k] = s0[k + 1] + counts[k];
            s1[k] = s1[k + 1] + counts[k] * centre;
            s2[k] = s2[k + 1] + counts[k] * centre * centre;
        }
        double min = Math.Min(statistics.Min, 0) / width, max = Math.Max(statistics.Max, 0) / width;
        double nonZero = statistics.Count - statistics.ZeroCount;
        int best = used;
        double bestError = double.PositiveInfinity;
        for (int t = 1; t <= used; t++)
        {
            double low = Math.Max(min, -t), high = Math.Min(max, t);
            double step = symmetric ? Math.Max(-low, high) / half : (high - low) / integers.Steps;
            double clipped = s2[t] - 2 * t * s1[t] + (double)t * t * s0[t];
            double inside = nonZero - s0[t];
            double error = Math.Max(clipped, 0) + inside * step * step / 12;
            if (error < bestError)
            {
                bestError = error;
                best = t;
            }
        }
        double threshold = best * width;
        return Clipped(statistics, -threshold, threshold);
    }

    /// <summary>Quantization steps between 0 and the range's end on one side: 127, or 255 for one-signed values quantized asymmetrically.</summary>
    private static int StepsOnOneSide(TensorStatistics statistics, TensorElementType activationType, bool symmetric)
    {
        var integers = QuantizedRange.Of(activationType);
        bool oneSigned = statistics.Min >= 0 || statistics.Max <= 0;
        return oneSigned && !symmetric ? integers.Steps : SymmetricHalf(integers);
    }

    /// <summary>Steps on each side of a symmetric zero point, as <see cref="QuantizationParameters.FromRange"/> uses (127 for 8 bits).</summary>
    private static int SymmetricHalf(QuantizedRange integers)
    {
        int zeroPoint = integers.Min < 0 ? 0 : (integers.Min + integers.Max + 1) / 2;
        return Math.Min(zeroPoint - integers.Min, integers.Max - zeroPoint);
    }

    /// <summary><c>[low, high]</c> clipped to the values seen, widened to 0, rounded outwards to float.</summary>
    private static ActivationRange Clipped(TensorStatistics statistics, double low, double high)
    {
        if (statistics.Count == 0) return new ActivationRange(0, 0);
        low = Math.Min(Math.Max(low, statistics.Min), 0);
        high = Math.Max(Math.Min(high, statistics.Max), 0);
        float lowF = (float)low, highF = (float)high;
        if (lowF > low) lowF = MathF.BitDecrement(lowF);
        if (highF < high) highF = MathF.BitIncrement(highF);
        return new ActivationRange(lowF, highF);
    }

    /// <summary>The nearest rank (1-based) of quantile <paramref name="q"/> among <paramref name="count"/> values.</summary>
    private static long Rank(double q, long count) => Math.Clamp((long)Math.Ceiling(q * count), 1, count);

    /// <summary>The bin holding the value of 1-based rank <paramref name="rank"/>.</summary>
    private static int BinOfRank(long[] counts, long rank)
    {
        long seen = 0;
        for (int k = 0; k < counts.Length; k++)
        {
            seen += counts[k];
            if (seen >= rank) return k;
        }
        return counts.Length - 1;
    }

    /// <summary>The bin holding the value of rank <paramref name="rank"/> in ascending signed order, and whether it is a negative one.</summary>
    private static (int Bin, bool Negative) SignedBinOfRank(TensorStatistics statistics, long rank)
    {
        var negative = statistics.NegativeCounts;
        long seen = 0;
        for (int k = negative.Length - 1; k >= 0; k--)
        {
            seen += negative[k];
            if (seen >= rank) return (k, true);
        }
        var positive = statistics.PositiveCounts;
        for (int k = 0; k < positive.Length; k++)
        {
            seen += positive[k];
            if (seen >= rank) return (k, false);
        }
        return (positive.Length - 1, false);
    }

    /// <summary>One past the last non-empty bin.</summary>
    private static int UsedBins(long[] counts)
    {
        int used = counts.Length;
        while (used > 1 && counts[used - 1] == 0) used--;
        return used;
    }

    private static double XLogX(long count) => count > 0 ? count * Math.Log(count) : 0;
}
