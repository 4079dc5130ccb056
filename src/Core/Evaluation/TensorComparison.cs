using Quantize.Kernels.Models;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Evaluation;

/// <summary>Accumulates the metrics of one tensor over samples, in float64, in constant memory.</summary>
internal sealed class TensorComparison(string name)
{
    private double _cosineSum, _minCosine = double.PositiveInfinity, _maxAbs, _signal, _noise;
    private long _rows, _agreeingRows;
    private bool _classifier = true;
    private int _samples;

    public string Name { get; } = name;

    /// <summary>Adds one sample; false if the two tensors cannot be compared (type or shape differ).</summary>
    public bool Add(Tensor reference, Tensor quantized)
    {
        if (!reference.Shape.SequenceEqual(quantized.Shape)) return false;
        var r = AsDoubles(reference);
        var q = AsDoubles(quantized);
        if (r is null || q is null) return false;

        double dot = 0, rr = 0, qq = 0, noise = 0;
        for (int i = 0; i < r.Length; i++)
        {
            double a = r[i], b = q[i], e = a - b;
            dot += a * b;
            rr += a * a;
            qq += b * b;
            noise += e * e;
            double abs = Math.Abs(e);
            if (abs > _maxAbs || double.IsNaN(abs)) _maxAbs = double.IsNaN(abs) ? double.NaN : abs;
        }
        // Two all-zero tensors are identical; one all-zero against a non-zero one has nothing in common.
        double cosine = rr == 0 && qq == 0 ? 1 : rr == 0 || qq == 0 ? 0 : dot / Math.Sqrt(rr * qq);
        _cosineSum += cosine;
        _minCosine = Math.Min(_minCosine, cosine);
        _signal += rr;
        _noise += noise;
        _samples++;

        // Classifier-like: [batch, classes] with at least two classes.
        if (reference.Rank == 2 && reference.Shape[1] >= 2)
        {
            int classes = reference.Shape[1];
            for (int row = 0; row < reference.Shape[0]; row++)
            {
                _rows++;
                if (ArgMax(r.AsSpan(row * classes, classes)) == ArgMax(q.AsSpan(row * classes, classes))) _agreeingRows++;
            }
        }
        else
        {
            _classifier = false;
        }
        return true;
    }

    public TensorAccuracy Result() => new(Name,
        _samples == 0 ? double.NaN : _cosineSum / _samples,
        _samples == 0 ? double.NaN : _minCosine,
        _maxAbs,
        _noise == 0 ? double.PositiveInfinity : _signal == 0 ? double.NegativeInfinity : 10 * Math.Log10(_signal / _noise),
        _classifier && _rows > 0 ? (double)_agreeingRows / _rows : null,
        _samples);

    private static int ArgMax(ReadOnlySpan<double> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best]) best = i;
        }
        return best;
    }

    private static double[]? AsDoubles(Tensor tensor) => tensor.ElementType switch
    {
        TensorElementType.Float32 => Array.ConvertAll(tensor.ToArray<float>(), v => (double)v),
        TensorElementType.Float64 => tensor.ToArray<double>(),
        TensorElementType.Float16 => Array.ConvertAll(tensor.ToArray<Half>(), v => (double)v),
        _ => null,
    };
}
