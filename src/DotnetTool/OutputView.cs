using Quantize.Kernels.Models;
using Quantize.Kernels.Runtime;

namespace Quantize.Tool;

/// <summary>One class of a score vector: its index, score and label (when a labels file was given and covers it).</summary>
internal sealed record ClassScore(int Index, double Score, string? Label);

/// <summary>The value range of a numeric output.</summary>
internal sealed record ValueStatistics(double Min, double Max, double Mean);

/// <summary>What <c>run</c> shows of one output.</summary>
internal sealed record OutputView(string Name, Tensor Tensor, IReadOnlyList<IReadOnlyList<ClassScore>>? Top, string? SavedTo)
{
    public ValueStatistics? Statistics { get; } = Measure(Tensor);

    /// <summary>
    /// The top <paramref name="k"/> classes of each row when <paramref name="tensor"/> is a score vector: floating point,
    /// <c>[classes]</c> or <c>[batch, 1, ..., classes]</c> with at least two classes; else null.
    /// Ties keep the lower index first, so the listing is deterministic.
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<ClassScore>>? TopK(Tensor tensor, int k, string[]? labels)
    {
        if (k <= 0 || tensor.Rank == 0 || tensor.ElementType is not (TensorElementType.Float32 or TensorElementType.Float64 or TensorElementType.Float16)
            || Values(tensor) is not { } values) return null;
        int classes = tensor.Shape[tensor.Rank - 1];
        for (int d = 1; d < tensor.Rank - 1; d++)
        {
            if (tensor.Shape[d] != 1) return null;
        }
        if (classes < 2) return null;
        int rows = tensor.Rank == 1 ? 1 : tensor.Shape[0];
        var result = new List<IReadOnlyList<ClassScore>>(rows);
        for (int row = 0; row < rows; row++)
        {
            var scores = values.AsSpan(row * classes, classes).ToArray();
            result.Add(Enumerable.Range(0, classes)
                .OrderByDescending(i => scores[i]).ThenBy(i => i)
                .Take(k)
                .Select(i => new ClassScore(i, scores[i], labels is not null && i < labels.Length ? labels[i] : null))
                .ToList());
        }
        return result;
    }

    private static ValueStatistics? Measure(Tensor tensor)
    {
        if (Values(tensor) is not { Length: > 0 } values) return null;
        double min = double.PositiveInfinity, max = double.NegativeInfinity, sum = 0;
        foreach (double v in values)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
            sum += v;
        }
        return new ValueStatistics(min, max, sum / values.Length);
    }

    /// <summary>The elements as doubles, for numeric tensors; null for others (strings, booleans).</summary>
    private static double[]? Values(Tensor tensor) => tensor.ElementType switch
    {
        TensorElementType.Float32 => Array.ConvertAll(tensor.ToArray<float>(), v => (double)v),
        TensorElementType.Float64 => tensor.ToArray<double>(),
        TensorElementType.Float16 => Array.ConvertAll(tensor.ToArray<Half>(), v => (double)v),
        TensorElementType.Int64 => Array.ConvertAll(tensor.ToArray<long>(), v => (double)v),
        TensorElementType.Int32 => Array.ConvertAll(tensor.ToArray<int>(), v => (double)v),
        TensorElementType.Int8 => Array.ConvertAll(tensor.ToArray<sbyte>(), v => (double)v),
        TensorElementType.UInt8 => Array.ConvertAll(tensor.ToArray<byte>(), v => (double)v),
        _ => null,
    };
}
