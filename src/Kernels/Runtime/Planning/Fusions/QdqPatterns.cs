using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>A DequantizeLinear node with constant parameters, as the QDQ fusions match it.</summary>
/// <param name="Node">The DequantizeLinear.</param>
/// <param name="Input">Its quantized input's name.</param>
/// <param name="Scale">The scale's name.</param>
/// <param name="ZeroPoint">The zero point's name, or "" when absent.</param>
/// <param name="Scales">The scales.</param>
/// <param name="ZeroPoints">The zero points (empty when absent).</param>
/// <param name="ZeroPointType">The zero point's element type, or null when absent.</param>
/// <param name="Axis">The axis attribute (default 1), not normalized.</param>
internal sealed record Dequantization(NodeProto Node, string Input, string Scale, string ZeroPoint, float[] Scales, int[] ZeroPoints,
    TensorElementType? ZeroPointType, long Axis)
{
    public bool PerTensor => Scales.Length == 1 && ZeroPoints.Length <= 1;
}

/// <summary>Matching helpers shared by the QDQ fusions: DequantizeLinear / QuantizeLinear nodes whose parameters are constants.</summary>
internal static class QdqPatterns
{
    /// <summary>The DequantizeLinear producing <paramref name="value"/>, when its scale (float32) and zero point (if any) are constants and it is not blocked.</summary>
    public static Dequantization? Dequantize(GraphView view, Dictionary<string, Tensor> constants, string value)
    {
        if (view.Producer(value) is not { OpType: "DequantizeLinear" } node || !GraphView.IsDefaultDomain(node) || node.Input.Count < 2) return null;
        if (Int(node, "block_size", 0) != 0 || Int(node, "output_dtype", 0) is not (0 or (int)TensorProto.Types.DataType.Float)) return null;
        if (!constants.TryGetValue(node.Input[1], out var scale) || scale.ElementType != TensorElementType.Float32 || scale.Length == 0) return null;
        string zpName = node.Input.Count > 2 ? node.Input[2] : "";
        int[] zeroPoints = [];
        TensorElementType? zpType = null;
        if (zpName.Length > 0)
        {
            if (!constants.TryGetValue(zpName, out var zp) || zp.Length != scale.Length) return null;
            if (zp.ElementType is not (TensorElementType.UInt8 or TensorElementType.Int8 or TensorElementType.Int32)) return null;
            zeroPoints = zp.ElementType switch
            {
                TensorElementType.Int32 => zp.ToArray<int>(),
                TensorElementType.Int8 => zp.ToArray<sbyte>().Select(v => (int)v).ToArray(),
                _ => zp.ToArray<byte>().Select(v => (int)v).ToArray(),
            };
            zpType = zp.ElementType;
        }
        return new Dequantization(node, node.Input[0], node.Input[1], zpName, scale.ToArray<float>(), zeroPoints, zpType, Int(node, "axis", 1));
    }

    /// <summary>
    /// The per-tensor QuantizeLinear to 8 bits that is the only reader of <paramref name="value"/>, with constant parameters:
    /// its node, scale and the output type (from the zero point, the output_dtype attribute, or uint8).
    /// </summary>
    public static (NodeProto Node, float Scale, int ZeroPoint, TensorElementType Type)? SoleQuantize(GraphView view, Dictionary<string, Tensor> constants, string value)
    {
        if (view.SoleReader(value) is not { OpType: "QuantizeLinear" } node || !GraphView.IsDefaultDomain(node) || node.Input.Count < 2 || node.Input[0] != value) return null;
        if (Int(node, "block_size", 0) != 0) return null;
        if (!constants.TryGetValue(node.Input[1], out var scale) || scale.ElementType != TensorElementType.Float32 || scale.Length != 1) return null;
        var type = TensorElementType.UInt8;
        int zeroPoint = 0;
        if (node.Input.Count > 2 && node.Input[2].Length > 0)
        {
            if (!constants.TryGetValue(node.Input[2], out var zp) || zp.Length != 1) return null;
            type = zp.ElementType;
            zeroPoint = type == TensorElementType.Int8 ? zp.ToArray<sbyte>()[0] : type == TensorElementType.UInt8 ? zp.ToArray<byte>()[0] : 0;
        }
        else if (Int(node, "output_dtype", 0) is var dtype and not 0)
        {
            type = OnnxElementTypes.ToElementType((int)dtype);
        }
        if (type is not (TensorElementType.UInt8 or TensorElementType.Int8)) return null;
        return (node, scale.ToArray<float>()[0], zeroPoint, type);
    }

    /// <summary>
    /// The Relu, or Clip with constant (or absent) bounds, that is the only reader of <paramref name="value"/>,
    /// as the interval it clamps to.
    /// </summary>
    public static (NodeProto Node, float Min, float Max)? SoleActivation(GraphView view, Dictionary<string, Tensor> constants, string value)
    {
        if (view.SoleReader(value) is not { } node || !GraphView.IsDefaultDomain(node) || node.Input.Count == 0 || node.Input[0] != value) return null;
        if (node.OpType == "Relu") return (node, 0f, float.PositiveInfinity);
        if (node.OpType != "Clip") return null;
        float min = float.NegativeInfinity, max = float.PositiveInfinity;
        // Opset 6-10 Clip has min/max attributes; 11+ has optional inputs.
        if (node.Attribute.FirstOrDefault(a => a.Name == "min") is { } minAttribute) min = minAttribute.F;
        if (node.Attribute.FirstOrDefault(a => a.Name == "max") is { } maxAttribute) max = maxAttribute.F;
        for (int i = 1; i < node.Input.Count; i++)
        {
            if (node.Input[i].Length == 0) continue;
            if (!constants.TryGetValue(node.Input[i], out var bound) || bound.ElementType != TensorElementType.Float32 || bound.Length != 1) return null;
            if (i == 1) min = bound.ToArray<float>()[0];
            else max = bound.ToArray<float>()[0];
        }
        if (float.IsNaN(min) || float.IsNaN(max) || min > max) return null;
        return (node, min, max);
    }

    public static long Int(NodeProto node, string name, long fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } attribute ? attribute.I : fallback;

    /// <summary>
    /// Runs <paramref name="match"/> on every node; each fusion found replaces its last node with the fused one and drops
    /// the rest of its chain, and the DequantizeLinear nodes it bypassed go too once nothing else reads them.
    /// </summary>
    public static List<NodeProto> Fuse(OnnxModel model, List<NodeProto> nodes, Func<NodeProto, QdqFusion?> match)
    {
        var replace = new Dictionary<NodeProto, NodeProto>(ReferenceEqualityComparer.Instance);
        var remove = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var bypassed = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        foreach (var node in nodes)
        {
            if (match(node) is not { } found) continue;
            replace[found.Last] = found.Fused;
            foreach (var fusedAway in found.Chain) if (!ReferenceEquals(fusedAway, found.Last)) remove.Add(fusedAway);
            bypassed.UnionWith(found.Dequantizations);
        }
        return replace.Count == 0 ? nodes : Rebuild(model, nodes, replace, remove, bypassed);
    }

    /// <summary>
    /// The nodes without the replaced and removed ones (each replaced node gives way to its fused node), then without the
    /// <paramref name="candidates"/> (DequantizeLinear nodes the fusions bypassed) that nothing reads any more.
    /// </summary>
    private static List<NodeProto> Rebuild(OnnxModel model, List<NodeProto> nodes, Dictionary<NodeProto, NodeProto> replace, HashSet<NodeProto> remove,
        HashSet<NodeProto> candidates)
    {
        var result = nodes.Where(n => !remove.Contains(n)).Select(n => replace.GetValueOrDefault(n, n)).ToList();
        var read = new HashSet<string>(result.SelectMany(n => n.Input), StringComparer.Ordinal);
        var graphOutputs = model.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        return result.Where(n => !candidates.Contains(n) || n.Output.Any(o => o.Length > 0 && (read.Contains(o) || graphOutputs.Contains(o)))).ToList();
    }
}

/// <summary>One QDQ fusion found: the fused node, the node it takes the place of, the chain it replaces, the DequantizeLinear nodes it bypasses.</summary>
internal sealed record QdqFusion(NodeProto Fused, NodeProto Last, List<NodeProto> Chain, List<NodeProto> Dequantizations);
