using System.Numerics.Tensors;
using Tensor = Quantize.Kernels.Runtime.Tensor;
using Quantize.Kernels.Models;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Calibration;

/// <summary>
/// Streaming statistics of one tensor's values over many samples, in memory that does not grow with the
/// number of samples: the count, the exact minimum and maximum, and two histograms of magnitudes, one for
/// the non-negative values and one for the negative ones.
/// </summary>
/// <remarks>
/// Bin <c>k</c> of each histogram holds the values whose magnitude is in <c>[k w, (k+1) w)</c>. The bin
/// width <c>w</c> is always a power of two: the smallest (from 2^-160 up) for which every magnitude seen
/// fits in <see cref="BinCount"/> bins. When a value beyond the range arrives, the width doubles as often
/// as needed and neighbouring bins merge (bin <c>k</c> into bin <c>k/2</c>), which is exact: a value lands in
/// the same bin whether it was added before or after the widening. The statistics are therefore a function
/// of the multiset of values alone, whatever the order, batching or merging of the samples.
/// Non-finite values (NaN, infinities) are counted in <see cref="NonFiniteCount"/> and otherwise ignored.
/// </remarks>
public sealed class TensorStatistics
{
    /// <summary>The default number of bins per sign: 2048, as TensorRT's entropy calibration and ONNX Runtime's percentile calibration use.</summary>
    public const int DefaultBinCount = 2048;

    /// <summary>The smallest bin width's exponent: below any float's resolution at the bin counts used.</summary>
    private const int MinExponent = -160;

    private readonly long[] _positive;
    private readonly long[] _negative;
    private int _exponent = MinExponent;

    /// <summary>Empty statistics with <paramref name="binCount"/> bins for each sign.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="binCount"/> is below 16 or above 2^20.</exception>
    public TensorStatistics(int binCount = DefaultBinCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(binCount, 16);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(binCount, 1 << 20);
        BinCount = binCount;
        _positive = new long[binCount];
        _negative = new long[binCount];
    }

    /// <summary>The number of bins per sign.</summary>
    public int BinCount { get; }

    /// <summary>The number of finite values added.</summary>
    public long Count { get; private set; }

    /// <summary>How many of them were exactly zero (counted in bin 0 of <see cref="PositiveCounts"/> too).</summary>
    public long ZeroCount { get; private set; }

    /// <summary>The number of NaN and infinite values seen (not in any other statistic).</summary>
    public long NonFiniteCount { get; private set; }

    /// <summary>The smallest finite value added, or 0 when there is none.</summary>
    public double Min { get; private set; }

    /// <summary>The largest finite value added, or 0 when there is none.</summary>
    public double Max { get; private set; }

    /// <summary>The width of every bin, a power of two.</summary>
    public double BinWidth => Math.ScaleB(1.0, _exponent);

    /// <summary>Counts of the values <c>x &gt;= 0</c> with <c>x</c> in <c>[k w, (k+1) w)</c>, for each bin <c>k</c>.</summary>
    public ReadOnlySpan<long> PositiveCounts => _positive;

    /// <summary>Counts of the values <c>x &lt; 0</c> with <c>-x</c> in <c>[k w, (k+1) w)</c>, for each bin <c>k</c>.</summary>
    public ReadOnlySpan<long> NegativeCounts => _negative;

    /// <summary>The histogram of magnitudes <c>|x|</c>: both signs added bin by bin.</summary>
    public long[] MagnitudeCounts()
    {
        var counts = new long[BinCount];
        for (int k = 0; k < counts.Length; k++) counts[k] = _positive[k] + _negative[k];
        return counts;
    }

    /// <summary>Adds the values of a float32, float64 or float16 tensor.</summary>
    /// <exception cref="ArgumentException">The tensor holds another element type.</exception>
    public void Add(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        switch (tensor.ElementType)
        {
            case TensorElementType.Float32:
                Add((ReadOnlySpan<float>)tensor.AsSpan<float>());
                break;
            case TensorElementType.Float64:
                Add((ReadOnlySpan<double>)tensor.AsSpan<double>());
                break;
            case TensorElementType.Float16:
            {
                var halves = tensor.AsSpan<Half>();
                var buffer = new float[Math.Min(halves.Length, 1 << 16)];
                for (int start = 0; start < halves.Length; start += buffer.Length)
                {
                    int length = Math.Min(buffer.Length, halves.Length - start);
                    TensorPrimitives.ConvertToSingle(halves.Slice(start, length), buffer);
                    Add(buffer.AsSpan(0, length));
                }
                break;
            }
            default:
                throw new ArgumentException($"A {tensor.ElementType.DisplayName()} tensor has no range to calibrate: only float tensors do.", nameof(tensor));
        }
    }

    /// <summary>Adds values.</summary>
    public void Add(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) return;
        var (min, max, hasNaN) = Kernels.Quantization.FloatRange.Of(values);
        if (hasNaN || !float.IsFinite(min) || !float.IsFinite(max))
        {
            AddChecked(values);
            return;
        }
        Extend(min, max, values.Length);
        double inverse = Math.ScaleB(1.0, -_exponent);
        long[] positive = _positive, negative = _negative;
        long zeros = 0;
        foreach (float value in values)
        {
            if (value > 0) positive[(int)(value * inverse)]++;
            else if (value < 0) negative[(int)(-value * inverse)]++;
            else zeros++;
        }
        positive[0] += zeros;
        ZeroCount += zeros;
    }

    /// <summary>Adds values.</summary>
    public void Add(ReadOnlySpan<double> values)
    {
        if (values.IsEmpty) return;
        double min = TensorPrimitives.Min(values), max = TensorPrimitives.Max(values);
        if (!double.IsFinite(min) || !double.IsFinite(max))
        {
            AddChecked(values);
            return;
        }
        Extend(min, max, values.Length);
        double inverse = Math.ScaleB(1.0, -_exponent);
        long zeros = 0;
        foreach (double value in values)
        {
            if (value > 0) _positive[(int)(value * inverse)]++;
            else if (value < 0) _negative[(int)(-value * inverse)]++;
            else zeros++;
        }
        _positive[0] += zeros;
        ZeroCount += zeros;
    }

    /// <summary>Adds everything <paramref name="other"/> has seen: the result equals adding its values directly.</summary>
    /// <exception cref="ArgumentException">The bin counts differ.</exception>
    public void Merge(TensorStatistics other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.BinCount != BinCount)
            throw new ArgumentException($"Statistics with {other.BinCount} bins cannot merge into statistics with {BinCount}.", nameof(other));
        NonFiniteCount += other.NonFiniteCount;
        if (other.Count == 0) return;
        Extend(other.Min, other.Max, other.Count);
        int shift = _exponent - other._exponent; // >= 0: our width covers other's largest magnitude, and is minimal
        for (int k = 0; k < BinCount; k++)
        {
            int target = shift >= 31 ? 0 : k >> shift;
            _positive[target] += other._positive[k];
            _negative[target] += other._negative[k];
        }
        ZeroCount += other.ZeroCount;
    }

    /// <summary>Adds values one by one, leaving out NaN and infinities.</summary>
    private void AddChecked<T>(ReadOnlySpan<T> values) where T : struct, System.Numerics.IFloatingPointIeee754<T>
    {
        var finite = new List<double>();
        foreach (var value in values)
        {
            if (T.IsFinite(value)) finite.Add(double.CreateTruncating(value));
            else NonFiniteCount++;
        }
        Add(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(finite));
    }

    /// <summary>Takes in the range of a batch of <paramref name="count"/> finite values: min, max and count, and the bin width.</summary>
    private void Extend(double min, double max, long count)
    {
        if (Count == 0)
        {
            Min = min;
            Max = max;
        }
        else
        {
            Min = Math.Min(Min, min);
            Max = Math.Max(Max, max);
        }
        Count += count;
        Widen(Math.Max(-Min, Max));
    }

    /// <summary>Doubles the bin width until <paramref name="magnitude"/> fits, merging bins pairwise.</summary>
    private void Widen(double magnitude)
    {
        int exponent = _exponent;
        if (magnitude > 0)
            exponent = Math.Max(exponent, Math.ILogB(magnitude) - Math.ILogB((double)BinCount)); // never above the minimal width
        while (magnitude * Math.ScaleB(1.0, -exponent) >= BinCount) exponent++;
        int shift = exponent - _exponent;
        if (shift == 0) return;
        for (int k = 1; k < BinCount; k++)
        {
            int target = shift >= 31 ? 0 : k >> shift;
            if (target == k) continue;
            _positive[target] += _positive[k];
            _negative[target] += _negative[k];
            _positive[k] = 0;
            _negative[k] = 0;
        }
        _exponent = exponent;
    }
}
