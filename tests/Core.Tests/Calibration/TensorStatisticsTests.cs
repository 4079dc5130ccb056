using Quantize.Core.Calibration;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models;
using Quantize.Kernels.Quantization;

namespace Quantize.Core.Tests.Calibration;

/// <summary>Streaming statistics and range selection against direct float64 computations over all the values.</summary>
public class TensorStatisticsTests
{
    [Fact]
    public void Min_max_and_counts_are_exact_over_batches()
    {
        var random = new Random(3);
        var statistics = new TensorStatistics();
        var all = new List<float>();
        for (int batch = 0; batch < 20; batch++)
        {
            // Batches of growing spread, so the bins widen many times.
            float[] values = Enumerable.Range(0, 1000).Select(_ => (float)(Gaussian(random) * Math.Pow(2, batch / 2.0))).ToArray();
            values[batch] = 0;
            statistics.Add(values);
            all.AddRange(values);
        }
        statistics.Add([float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0.5f]);
        all.Add(0.5f);

        Assert.Equal(all.Count, statistics.Count);
        Assert.Equal(3, statistics.NonFiniteCount);
        Assert.Equal(all.Count(v => v == 0), statistics.ZeroCount);
        Assert.Equal(all.Min(v => (double)v), statistics.Min);
        Assert.Equal(all.Max(v => (double)v), statistics.Max);
        long[] magnitudes = statistics.MagnitudeCounts();
        Assert.Equal(all.Count, magnitudes.Sum());
        Assert.Equal(all.Count(v => v >= 0), statistics.PositiveCounts.ToArray().Sum());
        // The width is the smallest power of two that holds the largest magnitude.
        double largest = all.Max(v => Math.Abs((double)v)), width = statistics.BinWidth;
        Assert.True(largest < width * statistics.BinCount && largest >= width / 2 * statistics.BinCount, $"{largest} vs width {width}");
        // Every value is in its bin.
        for (int k = 0; k < statistics.BinCount; k++)
            Assert.Equal(all.Count(v => v >= 0 && Math.Floor(v / width) == k), statistics.PositiveCounts[k]);
    }

    [Fact]
    public void The_statistics_do_not_depend_on_batching_order_or_merging()
    {
        var random = new Random(11);
        float[] values = Enumerable.Range(0, 30_000).Select(i => (float)(Gaussian(random) * (i % 7 == 0 ? 9 : 1) + (i % 3) * 0.1)).ToArray();
        values[12_345] = 87.5f; // one late outlier widens the bins

        var whole = new TensorStatistics();
        whole.Add(values);

        var batched = new TensorStatistics();
        for (int start = 0; start < values.Length; start += 777) batched.Add(values.AsSpan(start, Math.Min(777, values.Length - start)));

        var reversed = new TensorStatistics();
        foreach (float v in values.Reverse()) reversed.Add([v]);

        var merged = new TensorStatistics();
        var parts = new[] { new TensorStatistics(), new TensorStatistics(), new TensorStatistics() };
        for (int i = 0; i < values.Length; i++) parts[i % 3].Add([values[i]]);
        merged.Merge(parts[2]);
        merged.Merge(parts[0]);
        merged.Merge(parts[1]);

        var asDoubles = new TensorStatistics();
        asDoubles.Add(values.Select(v => (double)v).ToArray());

        foreach (var other in new[] { batched, reversed, merged, asDoubles })
        {
            Assert.Equal(whole.Count, other.Count);
            Assert.Equal(whole.Min, other.Min);
            Assert.Equal(whole.Max, other.Max);
            Assert.Equal(whole.BinWidth, other.BinWidth);
            Assert.Equal(whole.ZeroCount, other.ZeroCount);
            Assert.Equal(whole.PositiveCounts.ToArray(), other.PositiveCounts.ToArray());
            Assert.Equal(whole.NegativeCounts.ToArray(), other.NegativeCounts.ToArray());
            foreach (var method in Enum.GetValues<CalibrationMethod>())
            {
                var options = new QuantizationOptions { CalibrationMethod = method };
                Assert.Equal(RangeSelection.Select(whole, options), RangeSelection.Select(other, options));
            }
        }
    }

    public static TheoryData<string, double, bool> PercentileCases()
    {
        var data = new TheoryData<string, double, bool>();
        foreach (string distribution in new[] { "gaussian", "relu", "skewed", "negative" })
        {
            foreach (double percentile in new[] { 50, 99, 99.9, 99.999, 100 })
            {
                data.Add(distribution, percentile, true);
                data.Add(distribution, percentile, false);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(PercentileCases))]
    public void Percentile_ends_are_within_one_bin_of_the_exact_quantiles(string distribution, double percentile, bool symmetric)
    {
        double[] values = Sample(distribution, 50_000, seed: distribution.Length);
        var statistics = Statistics(values);
        var range = RangeSelection.Percentile(statistics, percentile, symmetric);
        double tolerance = statistics.BinWidth * (1 + 1e-6);
        Assert.True(range.Min <= 0 && range.Max >= 0);
        // Within the values seen (float64), rounded outwards to float.
        Assert.True(range.Min >= Math.Min(statistics.Min, 0) * (1 + 1e-7) && range.Max <= Math.Max(statistics.Max, 0) * (1 + 1e-7), $"{range} outside the values");

        if (symmetric)
        {
            double exact = NearestRank(values.Select(Math.Abs).ToArray(), percentile / 100);
            double threshold = Math.Max(-range.Min, range.Max);
            Assert.True(Math.Abs(threshold - exact) <= tolerance, $"threshold {threshold}, exact {exact}, bin {statistics.BinWidth}");
        }
        else
        {
            double tail = (100 - percentile) / 200;
            double low = Math.Min(NearestRank(values, tail), 0), high = Math.Max(NearestRank(values, 1 - tail), 0);
            Assert.True(Math.Abs(range.Min - low) <= tolerance, $"low {range.Min}, exact {low}, bin {statistics.BinWidth}");
            Assert.True(Math.Abs(range.Max - high) <= tolerance, $"high {range.Max}, exact {high}, bin {statistics.BinWidth}");
        }
        if (percentile == 100) Assert.Equal(RangeSelection.MinMax(statistics), range);
    }

    [Fact]
    public void Entropy_and_percentile_clip_outliers_that_minmax_keeps()
    {
        var random = new Random(5);
        var values = Enumerable.Range(0, 1_000_000).Select(_ => Gaussian(random)).ToList();
        for (int i = 0; i < 10; i++) values.Add((i % 2 == 0 ? 1 : -1) * (40 + 2 * i)); // 1e-5 of the values, at 40 to 58 sigma
        var statistics = Statistics(values.ToArray());

        var minMax = RangeSelection.MinMax(statistics);
        Assert.True(minMax.Min <= -42 && minMax.Max >= 40, $"minmax {minMax}");
        double[] all = values.ToArray();
        foreach (bool symmetric in new[] { false, true })
        {
            var percentile = RangeSelection.Percentile(statistics, 99.99, symmetric);
            var entropy = RangeSelection.Entropy(statistics, TensorElementType.UInt8, symmetric);
            var mse = RangeSelection.Mse(statistics, TensorElementType.UInt8, symmetric);
            Assert.True(percentile.Max is > 3 and < 5 && percentile.Min is < -3 and > -5, $"percentile {percentile}");
            Assert.True(entropy.Max is > 2.5f and < 12 && entropy.Min is < -2.5f and > -12, $"entropy {entropy}");

            // The MSE range's real error, quantizing every value, is the smallest of the four; it clips the outliers
            // part of the way (rounding over [-58, 58] costs more than clipping ten values somewhat).
            double mseError = QuantizationError(all, mse, symmetric);
            TestContext.Current.TestOutputHelper?.WriteLine($"symmetric {symmetric}: minmax {minMax} error {QuantizationError(all, minMax, symmetric):G4}, percentile {percentile} "
                + $"{QuantizationError(all, percentile, symmetric):G4}, entropy {entropy} {QuantizationError(all, entropy, symmetric):G4}, mse {mse} {mseError:G4}");
            foreach (var other in new[] { minMax, percentile, entropy })
                Assert.True(mseError <= QuantizationError(all, other, symmetric) * 1.02, $"mse {mse} error {mseError} vs {other}");
            Assert.True(mse.Max < minMax.Max && mse.Min > minMax.Min, $"mse {mse}");
        }
    }

    /// <summary>The mean squared error of quantizing every value to 8 bits over <paramref name="range"/> and back, in float64.</summary>
    private static double QuantizationError(double[] values, ActivationRange range, bool symmetric)
    {
        var parameters = QuantizationParameters.FromRange(range.Min, range.Max, QuantizedRange.Of(TensorElementType.UInt8), symmetric);
        double sum = 0;
        foreach (double v in values)
        {
            double q = Math.Clamp(Math.Round(v / parameters.Scale) + parameters.ZeroPoint, 0, 255);
            double back = (q - parameters.ZeroPoint) * parameters.Scale;
            sum += (v - back) * (v - back);
        }
        return sum / values.Length;
    }

    [Fact]
    public void Mse_finds_the_analytic_optimum_of_a_gaussian()
    {
        // Expected error of clipping N(0, 1) at [-T, T] and rounding inside over 255 steps:
        // 2 * integral from T of (x - T)^2 phi(x) dx + P(|x| <= T) * step^2 / 12, minimized numerically.
        static double Phi(double x) => Math.Exp(-x * x / 2) / Math.Sqrt(2 * Math.PI);
        static double Integral(Func<double, double> f, double a, double b)
        {
            const int n = 2000;
            double h = (b - a) / n, sum = f(a) + f(b);
            for (int i = 1; i < n; i++) sum += f(a + i * h) * (i % 2 == 1 ? 4 : 2);
            return sum * h / 3;
        }
        double Error(double t) => 2 * Integral(x => (x - t) * (x - t) * Phi(x), t, 12) + (1 - 2 * Integral(Phi, t, 12)) * Math.Pow(2 * t / 255, 2) / 12;
        double best = 1, bestError = double.PositiveInfinity;
        for (double t = 1; t < 8; t += 0.001)
        {
            double e = Error(t);
            if (e < bestError) (best, bestError) = (t, e);
        }

        var random = new Random(9);
        var statistics = Statistics(Enumerable.Range(0, 2_000_000).Select(_ => Gaussian(random)).ToArray());
        var range = RangeSelection.Mse(statistics, TensorElementType.UInt8, symmetric: false);
        TestContext.Current.TestOutputHelper?.WriteLine($"analytic optimum {best:F3}, from the histogram {range}");
        // The error is flat near the optimum and the sample's tail is finite; 0.25 sigma is a tight bound.
        Assert.True(Math.Abs(range.Max - best) < 0.25 && Math.Abs(-range.Min - best) < 0.25, $"{range} vs {best:F3}");
    }

    [Theory]
    [InlineData("gaussian", false)]
    [InlineData("gaussian", true)]
    [InlineData("relu", false)]
    [InlineData("relu", true)]
    [InlineData("skewed", false)]
    public void Entropy_and_mse_match_a_direct_search_over_the_histogram(string distribution, bool symmetric)
    {
        var statistics = Statistics(Sample(distribution, 200_000, seed: 17));
        bool oneSigned = statistics.Min >= 0 || statistics.Max <= 0;
        int levels = oneSigned && !symmetric ? 256 : 128;
        long[] counts = statistics.MagnitudeCounts();
        counts[0] -= statistics.ZeroCount; // the entropy method leaves exact zeros out
        int used = counts.Length;
        while (counts[used - 1] == 0) used--;

        int bestEntropy = DirectArgMin(levels, used, t => DirectKl(counts, used, t, levels));
        Assert.Equal(Clip(statistics, bestEntropy), RangeSelection.Entropy(statistics, TensorElementType.UInt8, symmetric));

        counts[0] += statistics.ZeroCount;
        int bestMse = DirectArgMin(1, used, t => DirectSquaredError(statistics, counts, used, t, symmetric));
        Assert.Equal(Clip(statistics, bestMse), RangeSelection.Mse(statistics, TensorElementType.UInt8, symmetric));
        TestContext.Current.TestOutputHelper?.WriteLine($"{distribution} symmetric {symmetric}: minmax {RangeSelection.MinMax(statistics)}, entropy {Clip(statistics, bestEntropy)}, mse {Clip(statistics, bestMse)}");
    }

    [Fact]
    public void Ranges_always_hold_zero_and_stay_within_the_values()
    {
        var positive = Statistics([1.5, 2, 5]);
        var negative = Statistics([-3, -0.25]);
        var zeros = Statistics([0, 0, 0]);
        var empty = new TensorStatistics();
        foreach (var method in Enum.GetValues<CalibrationMethod>())
        {
            var options = new QuantizationOptions { CalibrationMethod = method };
            var up = RangeSelection.Select(positive, options);
            var down = RangeSelection.Select(negative, options);
            Assert.True(up.Min == 0 && up.Max > 0 && up.Max <= 5, $"{method}: {up}");
            Assert.True(down.Max == 0 && down.Min < 0 && down.Min >= -3, $"{method}: {down}");
            Assert.Equal(new ActivationRange(0, 0), RangeSelection.Select(zeros, options));
            Assert.Equal(new ActivationRange(0, 0), RangeSelection.Select(empty, options));
        }
        Assert.Equal(new ActivationRange(0, 5), RangeSelection.MinMax(positive));
        Assert.Equal(new ActivationRange(-3, 0), RangeSelection.MinMax(negative));
    }

    /// <summary>KL(P || Q) as the method defines it, computed bin by bin in float64.</summary>
    private static double DirectKl(long[] counts, int used, int t, int levels)
    {
        var p = new double[t];
        for (int j = 0; j < t; j++) p[j] = counts[j];
        for (int j = t; j < used; j++) p[t - 1] += counts[j];
        var levelSum = new double[levels];
        var levelSupport = new int[levels];
        for (int j = 0; j < t; j++)
        {
            int level = (int)((long)j * levels / t);
            levelSum[level] += counts[j];
            if (p[j] > 0) levelSupport[level]++;
        }
        var q = new double[t];
        for (int j = 0; j < t; j++)
        {
            int level = (int)((long)j * levels / t);
            q[j] = p[j] > 0 ? levelSum[level] / levelSupport[level] : 0;
        }
        double pTotal = p.Sum(), qTotal = q.Sum(), kl = 0;
        for (int j = 0; j < t; j++)
        {
            if (p[j] == 0) continue;
            if (q[j] == 0) return double.PositiveInfinity;
            kl += p[j] / pTotal * Math.Log(p[j] / pTotal / (q[j] / qTotal));
        }
        return kl;
    }

    /// <summary>Clipping error from bin centres plus step²/12 for every non-zero value inside, summed bin by bin.</summary>
    private static double DirectSquaredError(TensorStatistics statistics, long[] counts, int used, int t, bool symmetric)
    {
        double w = statistics.BinWidth, threshold = t * w;
        double low = Math.Max(Math.Min(statistics.Min, 0), -threshold), high = Math.Min(Math.Max(statistics.Max, 0), threshold);
        double step = symmetric ? Math.Max(-low, high) / 127 : (high - low) / 255;
        double error = 0, inside = -statistics.ZeroCount;
        for (int k = 0; k < used; k++)
        {
            double centre = (k + 0.5) * w;
            if (k >= t) error += counts[k] * (centre - threshold) * (centre - threshold);
            else inside += counts[k];
        }
        return error + inside * step * step / 12;
    }

    private static int DirectArgMin(int first, int last, Func<int, double> cost)
    {
        int best = last;
        double bestCost = double.PositiveInfinity;
        for (int t = first; t <= last; t++)
        {
            double c = cost(t);
            // Within float64 rounding, a later candidate does not beat an earlier one.
            if (c < bestCost * (1 - 1e-12))
            {
                bestCost = c;
                best = t;
            }
        }
        return best;
    }

    /// <summary>[-t w, t w] clipped to the values and widened to 0, rounded outwards to float.</summary>
    private static ActivationRange Clip(TensorStatistics statistics, int bins)
    {
        double threshold = bins * statistics.BinWidth;
        double low = Math.Min(Math.Max(statistics.Min, -threshold), 0), high = Math.Max(Math.Min(statistics.Max, threshold), 0);
        float lowF = (float)low, highF = (float)high;
        return new ActivationRange(lowF > low ? MathF.BitDecrement(lowF) : lowF, highF < high ? MathF.BitIncrement(highF) : highF);
    }

    internal static TensorStatistics Statistics(double[] values)
    {
        var statistics = new TensorStatistics();
        statistics.Add(values);
        return statistics;
    }

    private static double NearestRank(double[] values, double q)
    {
        var sorted = values.Order().ToArray();
        long rank = Math.Clamp((long)Math.Ceiling(q * sorted.Length), 1, sorted.Length);
        return sorted[rank - 1];
    }

    private static double[] Sample(string distribution, int count, int seed)
    {
        var random = new Random(seed);
        return distribution switch
        {
            "gaussian" => Enumerable.Range(0, count).Select(_ => Gaussian(random) * 2.5 + 0.3).ToArray(),
            "relu" => Enumerable.Range(0, count).Select(_ => Math.Max(0, Gaussian(random) * 3 - 1)).ToArray(),
            "skewed" => Enumerable.Range(0, count).Select(_ => Math.Exp(Gaussian(random)) - 1.2).ToArray(),
            "negative" => Enumerable.Range(0, count).Select(_ => -Math.Abs(Gaussian(random)) * 0.01 - 0.001).ToArray(),
            _ => throw new ArgumentException(distribution),
        };
    }

    internal static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
