using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>
/// Fuses GELU written out in elementary ops, as PyTorch exports BERT-style models (opsets before Gelu existed):
/// <code>
/// Div(x, sqrt 2) or Mul(x, 1/sqrt 2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5)      (or x * 0.5 first)
/// </code>
/// into one Gelu node: one pass over the tensor instead of five. The result differs only by float rounding.
/// </summary>
internal sealed class GeluFusion : IGraphRewrite
{
    private const float Sqrt2 = 1.41421356f;

    public List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes)
    {
        var view = new GraphView(model, nodes);
        var replace = new Dictionary<NodeProto, NodeProto>(ReferenceEqualityComparer.Instance);
        var remove = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        foreach (var erf in nodes)
        {
            if (erf.OpType != "Erf" || !GraphView.IsDefaultDomain(erf)) continue;
            if (Match(model, view, erf) is not { } match) continue;
            var fused = new NodeProto { OpType = "Gelu", Domain = PlanBuilder.FusedDomain, Name = erf.Name };
            fused.Input.Add(match.X);
            fused.Output.Add(match.Last.Output[0]);
            replace[match.Last] = fused;
            remove.UnionWith(match.Nodes);
        }
        return GraphRewrites.Rebuild(nodes, replace, remove);
    }

    private static (string X, NodeProto Last, NodeProto[] Nodes)? Match(OnnxModel model, GraphView view, NodeProto erf)
    {
        // x / sqrt 2 (or x * (1 / sqrt 2)), read by the Erf alone.
        if (view.Producer(erf.Input[0]) is not { } scale || !GraphView.IsDefaultDomain(scale) || view.SoleReader(scale.Output[0]) != erf) return null;
        string x;
        if (scale.OpType == "Div" && IsNear(view.ScalarConstant(model, scale.Input[1]), Sqrt2)) x = scale.Input[0];
        else if (scale.OpType == "Mul" && GraphView.OtherInput(scale, scale.Input[0]) is { } c0 && IsNear(view.ScalarConstant(model, c0), 1 / Sqrt2)) x = scale.Input[0];
        else if (scale.OpType == "Mul" && IsNear(view.ScalarConstant(model, scale.Input[0]), 1 / Sqrt2)) x = scale.Input[1];
        else return null;

        // 1 + erf
        if (view.SoleReader(erf.Output[0]) is not { OpType: "Add" } add || !GraphView.IsDefaultDomain(add)
            || GraphView.OtherInput(add, erf.Output[0]) is not { } one || !IsNear(view.ScalarConstant(model, one), 1f)) return null;

        // (1 + erf) * x * 0.5, in either association.
        if (view.SoleReader(add.Output[0]) is not { OpType: "Mul" } product || !GraphView.IsDefaultDomain(product)
            || GraphView.OtherInput(product, add.Output[0]) is not { } factor) return null;
        if (factor == x)
        {
            if (view.SoleReader(product.Output[0]) is not { OpType: "Mul" } half || !GraphView.IsDefaultDomain(half)
                || GraphView.OtherInput(half, product.Output[0]) is not { } c || !IsNear(view.ScalarConstant(model, c), 0.5f)) return null;
            return (x, half, [scale, erf, add, product, half]);
        }
        if (view.Producer(factor) is { OpType: "Mul" } halfX && GraphView.IsDefaultDomain(halfX) && view.SoleReader(factor) == product
            && GraphView.OtherInput(halfX, x) is { } h && IsNear(view.ScalarConstant(model, h), 0.5f))
            return (x, product, [scale, erf, add, halfX, product]);
        return null;
    }

    private static bool IsNear(float? value, float expected) => value is { } v && MathF.Abs(v - expected) <= 1e-6f * expected;
}
