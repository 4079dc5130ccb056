using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>
/// Fuses a residual block's end, Conv then Add (the Conv's only reader) then optionally Relu (the Add's only reader), into
/// one Conv whose fourth input is the Add's other operand: the Conv adds it, and applies Relu, while each chunk of its
/// output is still in cache. Same values as the separate nodes (the same float additions in the same order); a residual
/// that only broadcasts to the output is added after the convolution as Add would. The fused node takes the Add's place
/// in the order, where the residual has been computed.
/// </summary>
internal sealed class ConvAddFusion : IGraphRewrite
{
    public List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes)
    {
        var view = new GraphView(model, nodes);
        var replace = new Dictionary<NodeProto, NodeProto>(ReferenceEqualityComparer.Instance);
        var remove = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        foreach (var conv in nodes)
        {
            if (conv.OpType != "Conv" || !GraphView.IsDefaultDomain(conv) || conv.Output.Count != 1 || conv.Input.Count < 2) continue;
            if (view.SoleReader(conv.Output[0]) is not { OpType: "Add" } add || !GraphView.IsDefaultDomain(add) || add.Input.Count != 2) continue;
            if (replace.ContainsKey(add)) continue;
            int self = add.Input[0] == conv.Output[0] ? 0 : 1;
            string residual = add.Input[1 - self];
            if (residual == conv.Output[0] || residual.Length == 0) continue;
            var relu = view.SoleReader(add.Output[0]) is { OpType: "Relu" } r && GraphView.IsDefaultDomain(r) ? r : null;
            var fused = new NodeProto { OpType = "Conv", Domain = PlanBuilder.FusedDomain, Name = conv.Name };
            fused.Input.Add(conv.Input[0]);
            fused.Input.Add(conv.Input[1]);
            fused.Input.Add(conv.Input.Count > 2 ? conv.Input[2] : "");
            fused.Input.Add(residual);
            fused.Attribute.AddRange(conv.Attribute);
            if (relu is not null)
                fused.Attribute.Add(new AttributeProto { Name = "activation", Type = AttributeProto.Types.AttributeType.String, S = Google.Protobuf.ByteString.CopyFromUtf8("Relu") });
            fused.Output.Add((relu ?? add).Output[0]);
            replace[add] = fused;
            remove.Add(conv);
            if (relu is not null) remove.Add(relu);
        }
        return GraphRewrites.Rebuild(nodes, replace, remove);
    }
}
