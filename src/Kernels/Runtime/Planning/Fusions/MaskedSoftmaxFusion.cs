using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>
/// Fuses the attention scores' scaling, mask and softmax, as BERT-style models are exported:
/// <code>
/// Div(scores, c) or Mul(scores, c) -> Add(mask) -> Softmax(axis -1)
/// </code>
/// with c a constant scalar, into one MaskedSoftmax(scores, mask) node that works row by row.
/// </summary>
internal sealed class MaskedSoftmaxFusion : IGraphRewrite
{
    public List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes)
    {
        var view = new GraphView(model, nodes);
        var replace = new Dictionary<NodeProto, NodeProto>(ReferenceEqualityComparer.Instance);
        var remove = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        foreach (var softmax in nodes)
        {
            if (softmax.OpType != "Softmax" || !GraphView.IsDefaultDomain(softmax)) continue;
            if (softmax.Attribute.FirstOrDefault(a => a.Name == "axis") is not { I: -1 }) continue;
            if (view.Producer(softmax.Input[0]) is not { OpType: "Add" } add || !GraphView.IsDefaultDomain(add) || view.SoleReader(add.Output[0]) != softmax) continue;
            // The scaled scores are whichever Add input a sole-reader Div/Mul by a constant produced; the other is the mask.
            NodeProto? scale = null;
            string mask = "";
            foreach (int i in new[] { 0, 1 })
            {
                if (view.Producer(add.Input[i]) is { OpType: "Div" or "Mul" } candidate && GraphView.IsDefaultDomain(candidate)
                    && view.SoleReader(candidate.Output[0]) == add && view.ScalarConstant(model, candidate.Input[1]) is not null)
                {
                    scale = candidate;
                    mask = add.Input[1 - i];
                    break;
                }
            }
            if (scale is null || add.Input[0] == add.Input[1]) continue;
            var fused = new NodeProto { OpType = "MaskedSoftmax", Domain = PlanBuilder.FusedDomain, Name = softmax.Name };
            fused.Input.AddRange([scale.Input[0], mask]);
            fused.Attribute.Add(new AttributeProto { Name = "scale", Type = AttributeProto.Types.AttributeType.Float, F = view.ScalarConstant(model, scale.Input[1])!.Value });
            fused.Attribute.Add(new AttributeProto { Name = "divide", Type = AttributeProto.Types.AttributeType.Int, I = scale.OpType == "Div" ? 1 : 0 });
            fused.Output.Add(softmax.Output[0]);
            replace[softmax] = fused;
            remove.UnionWith([scale, add]);
        }
        return GraphRewrites.Rebuild(nodes, replace, remove);
    }
}
