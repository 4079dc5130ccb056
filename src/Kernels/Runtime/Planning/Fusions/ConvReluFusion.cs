using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>
/// Fuses Conv followed by Relu (its only reader) into one Conv that applies max(x, 0) to each chunk of its output while
/// the chunk is still in cache: one pass and one tensor less. BatchNormalization is folded into the Conv before this runs,
/// so Conv + BatchNormalization + Relu (ResNet's pattern) ends as one node. Same values as the two nodes.
/// </summary>
internal sealed class ConvReluFusion : IGraphRewrite
{
    public List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes)
    {
        var view = new GraphView(model, nodes);
        var replace = new Dictionary<NodeProto, NodeProto>(ReferenceEqualityComparer.Instance);
        var remove = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        foreach (var conv in nodes)
        {
            if (conv.OpType != "Conv" || !GraphView.IsDefaultDomain(conv) || conv.Output.Count != 1) continue;
            if (view.SoleReader(conv.Output[0]) is not { OpType: "Relu" } relu || !GraphView.IsDefaultDomain(relu)) continue;
            var fused = new NodeProto { OpType = "Conv", Domain = PlanBuilder.FusedDomain, Name = conv.Name };
            fused.Input.AddRange(conv.Input);
            fused.Attribute.AddRange(conv.Attribute);
            fused.Attribute.Add(new AttributeProto { Name = "activation", Type = AttributeProto.Types.AttributeType.String, S = Google.Protobuf.ByteString.CopyFromUtf8("Relu") });
            fused.Output.Add(relu.Output[0]);
            replace[conv] = fused;
            remove.Add(relu);
        }
        return GraphRewrites.Rebuild(nodes, replace, remove);
    }
}
