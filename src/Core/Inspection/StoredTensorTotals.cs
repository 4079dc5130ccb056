using Quantize.Kernels.Models;

namespace Quantize.Core.Inspection;

/// <summary>Adds up a model's stored tensors: totals, per element type, the largest, the quantized ones.</summary>
internal sealed class StoredTensorTotals
{
    public long Parameters { get; private set; }
    public long Bytes { get; private set; }
    public int Count { get; private set; }
    public int QuantizedCount { get; private set; }
    public List<string> QuantizedNames { get; } = [];

    private readonly Dictionary<TensorElementType, (int Tensors, long Elements, long Bytes)> _byType = [];
    private readonly List<StoredTensorInfo> _all = [];

    public static StoredTensorTotals Of(Model model)
    {
        var totals = new StoredTensorTotals();
        foreach (var info in model.DescribeStoredTensors()) totals.Add(info);
        return totals;
    }

    private void Add(StoredTensorInfo info)
    {
        Count++;
        Parameters += info.ElementCount;
        Bytes += info.ByteCount;
        var (tensors, elements, bytes) = _byType.GetValueOrDefault(info.ElementType);
        _byType[info.ElementType] = (tensors + 1, elements + info.ElementCount, bytes + info.ByteCount);
        _all.Add(info);
        if (info.ElementType.IsQuantizedStorage())
        {
            QuantizedCount++;
            if (QuantizedNames.Count < ModelSummary.MaxListedQuantizedTensors) QuantizedNames.Add(info.Name);
        }
    }

    public IReadOnlyList<DtypeTotals> ByDtype() => _byType
        .Select(p => new DtypeTotals(p.Key.DisplayName(), p.Value.Tensors, p.Value.Elements, p.Value.Bytes))
        .OrderByDescending(t => t.Bytes)
        .ThenBy(t => t.Dtype, StringComparer.Ordinal)
        .ToList();

    public IReadOnlyList<WeightSummary> Largest() => _all
        .OrderByDescending(t => t.ByteCount)
        .ThenBy(t => t.Name, StringComparer.Ordinal)
        .Take(ModelSummary.MaxLargestWeights)
        .Select(t => new WeightSummary(t.Name, t.ElementType.DisplayName(), t.Shape, t.ElementCount, t.ByteCount))
        .ToList();
}
