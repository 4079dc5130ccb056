using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>
/// Fuses layer normalization over the last axis written out in elementary ops (PyTorch exports before opset 17):
/// <code>
/// m = ReduceMean(x, [-1]);  d = Sub(x, m);  v = ReduceMean(Pow(d, 2), [-1]);  n = Div(d, Sqrt(Add(v, eps)))
/// y = Add(Mul(n, gamma), beta)      (gamma and beta constant vectors; the Add is optional)
/// </code>
/// into one LayerNormalization(x, gamma, beta, axis -1, epsilon eps): one pass per row instead of nine over the tensor.
/// The result differs only by float rounding (the sums are taken in another order).
/// </summary>
internal sealed class LayerNormalizationFusion : IGraphRewrite
{
    public List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes)
    {
        var view = new GraphView(model, nodes);
        var replace = new Dictionary<NodeProto, NodeProto>(ReferenceEqualityComparer.Instance);
        var remove = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        foreach (var mean in nodes)
        {
            if (mean.OpType != "ReduceMean" || Match(model, view, mean) is not { } match) continue;
            var fused = new NodeProto { OpType = "LayerNormalization", Domain = PlanBuilder.FusedDomain, Name = mean.Name };
            fused.Input.AddRange([mean.Input[0], match.Gamma]);
            if (match.Beta is not null) fused.Input.Add(match.Beta);
            fused.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = -1 });
            fused.Attribute.Add(new AttributeProto { Name = "epsilon", Type = AttributeProto.Types.AttributeType.Float, F = match.Epsilon });
            fused.Output.Add(match.Last.Output[0]);
            replace[match.Last] = fused;
            remove.UnionWith(match.Nodes);
        }
        return GraphRewrites.Rebuild(nodes, replace, remove);
    }

    private static (string Gamma, string? Beta, float Epsilon, NodeProto Last, List<NodeProto> Nodes)? Match(OnnxModel model, GraphView view, NodeProto mean)
    {
        if (!IsLastAxisMean(model, view, mean)) return null;
        string x = mean.Input[0];
        if (view.SoleReader(mean.Output[0]) is not { OpType: "Sub" } sub || !GraphView.IsDefaultDomain(sub) || sub.Input[0] != x || sub.Input[1] != mean.Output[0]) return null;
        string d = sub.Output[0];
        if (view.IsGraphOutput(d) || view.Readers(d) is not { Count: 2 } readers) return null;
        var square = readers.FirstOrDefault(r => r.OpType is "Pow" or "Mul");
        var divide = readers.FirstOrDefault(r => r.OpType == "Div");
        if (square is null || divide is null || !GraphView.IsDefaultDomain(square) || !GraphView.IsDefaultDomain(divide) || divide.Input[0] != d) return null;
        bool squares = square.OpType == "Pow"
            ? square.Input[0] == d && view.ScalarConstant(model, square.Input[1]) == 2f
            : square.Input[0] == d && square.Input[1] == d;
        if (!squares) return null;
        if (view.SoleReader(square.Output[0]) is not { OpType: "ReduceMean" } variance || variance.Input[0] != square.Output[0] || !IsLastAxisMean(model, view, variance)) return null;
        if (view.SoleReader(variance.Output[0]) is not { OpType: "Add" } addEpsilon || !GraphView.IsDefaultDomain(addEpsilon)
            || GraphView.OtherInput(addEpsilon, variance.Output[0]) is not { } epsilonValue || view.ScalarConstant(model, epsilonValue) is not { } epsilon) return null;
        if (view.SoleReader(addEpsilon.Output[0]) is not { OpType: "Sqrt" } sqrt || !GraphView.IsDefaultDomain(sqrt)) return null;
        if (view.SoleReader(sqrt.Output[0]) != divide || divide.Input[1] != sqrt.Output[0]) return null;
        if (view.SoleReader(divide.Output[0]) is not { OpType: "Mul" } scale || !GraphView.IsDefaultDomain(scale)
            || GraphView.OtherInput(scale, divide.Output[0]) is not { } gamma || view.Initializer(gamma) is not { Dims.Count: 1 } gammaTensor) return null;
        var nodes = new List<NodeProto> { mean, sub, square, variance, addEpsilon, sqrt, divide, scale };
        if (view.SoleReader(scale.Output[0]) is { OpType: "Add" } shift && GraphView.IsDefaultDomain(shift)
            && GraphView.OtherInput(shift, scale.Output[0]) is { } beta && view.Initializer(beta) is { Dims.Count: 1 } betaTensor && betaTensor.Dims[0] == gammaTensor.Dims[0])
        {
            nodes.Add(shift);
            return (gamma, beta, epsilon, shift, nodes);
        }
        return (gamma, null, epsilon, scale, nodes);
    }

    /// <summary>ReduceMean over the last axis only, keeping it: axes [-1] as an attribute (before opset 18) or a constant input.</summary>
    private static bool IsLastAxisMean(OnnxModel model, GraphView view, NodeProto node)
    {
        if (!GraphView.IsDefaultDomain(node) || node.Attribute.FirstOrDefault(a => a.Name == "keepdims") is { I: 0 }) return false;
        var axes = node.Attribute.FirstOrDefault(a => a.Name == "axes")?.Ints.ToArray()
            ?? (node.Input.Count > 1 && node.Input[1].Length > 0 ? view.Int64Constant(model, node.Input[1]) : null);
        return axes is [-1];
    }
}
