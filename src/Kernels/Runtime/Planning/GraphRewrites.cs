using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>
/// A rewrite of the node list before operators are built: fusions such as Conv + BatchNormalization or
/// the dynamic-quantization MatMul pattern replace several nodes with one node (standard or internal).
/// </summary>
internal interface IGraphRewrite
{
    /// <summary>Rewrites <paramref name="nodes"/> (in topological order) and returns the new list.</summary>
    List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes);
}

/// <summary>A rewrite that also computes new constants (folded weights), which it adds to the plan's constants.</summary>
internal interface IConstantRewrite
{
    List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes, Dictionary<string, Tensor> constants);
}

/// <summary>The rewrites the planner applies, in order.</summary>
internal static class GraphRewrites
{
    /// <summary>Registered rewrites. Each one leaves the graph valid and the outputs equal within float rounding.</summary>
    internal static readonly List<IGraphRewrite> All = [new DynamicQuantizedMatMulFusion(), new MatMulAddFusion(), new GeluFusion(), new LayerNormalizationFusion(), new MaskedSoftmaxFusion(), new ConvAddFusion(), new ConvReluFusion()];

    /// <summary>
    /// Rewrites that read constants (folding them into new ones, or matching on their values), applied first:
    /// BatchNormalization folding, then the QDQ fusions (integer Conv/MatMul/Gemm, and MaxPool/Add, on 8-bit activations).
    /// </summary>
    internal static readonly List<IConstantRewrite> Folding = [new BatchNormalizationFolding(), new QdqLinearFusion(), new QdqElementwiseFusion()];

    /// <summary>
    /// The node list with each key of <paramref name="replace"/> swapped for its fused node (placed where the pattern's last
    /// node was, so every input is produced before it) and the other matched nodes in <paramref name="remove"/> dropped.
    /// </summary>
    internal static List<NodeProto> Rebuild(List<NodeProto> nodes, Dictionary<NodeProto, NodeProto> replace, HashSet<NodeProto> remove) =>
        replace.Count == 0 ? nodes : nodes.Where(n => replace.ContainsKey(n) || !remove.Contains(n)).Select(n => replace.GetValueOrDefault(n, n)).ToList();

    public static List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes, Dictionary<string, Tensor> constants)
    {
        foreach (var rewrite in Folding) nodes = rewrite.Apply(model, options, nodes, constants);
        foreach (var rewrite in All) nodes = rewrite.Apply(model, options, nodes);
        return nodes;
    }
}
