using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>
/// Fuses ONNX Runtime's dynamic-quantization pattern into one node that runs <see cref="Gemm.Int8Gemm.MultiplyDynamic"/>:
/// <code>
/// DynamicQuantizeLinear(a) -> (aq, as, azp)
/// MatMulInteger(aq, Wq, azp, Wzp) -> p;  Cast(p, float) -> f;  Mul(as, Ws) -> s;  Mul(f, s) -> y  [; Add(y, bias) -> z]
/// </code>
/// with Wq, Wzp, Ws (and bias) constant. The fused node quantizes <c>a</c> itself, exactly as DynamicQuantizeLinear
/// would, so the integers are the same; the float steps are the same multiplications in the same order.
/// DynamicQuantizeLinear stays if anything else reads its outputs.
/// </summary>
internal sealed class DynamicQuantizedMatMulFusion : IGraphRewrite
{
    public List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes)
    {
        if (!options.UseIntegerKernels) return nodes;
        var view = new GraphView(model, nodes);
        var removed = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var replacements = new Dictionary<NodeProto, NodeProto>(ReferenceEqualityComparer.Instance);

        foreach (var matmul in nodes)
        {
            if (matmul.OpType != "MatMulInteger" || !GraphView.IsDefaultDomain(matmul) || matmul.Input.Count < 4) continue;
            var quantize = view.Producer(matmul.Input[0]);
            if (quantize is not { OpType: "DynamicQuantizeLinear" } || quantize.Output[2] != matmul.Input[2]) continue;
            if (view.Initializer(matmul.Input[1]) is null || view.Initializer(matmul.Input[3]) is null) continue;
            if (view.SoleReader(matmul.Output[0]) is not { OpType: "Cast" } cast || cast.Attribute.FirstOrDefault(a => a.Name == "to")?.I != (int)TensorProto.Types.DataType.Float) continue;
            if (view.SoleReader(cast.Output[0]) is not { OpType: "Mul" } outputMul) continue;
            string scaleValue = outputMul.Input[0] == cast.Output[0] ? outputMul.Input[1] : outputMul.Input[0];
            if (view.Producer(scaleValue) is not { OpType: "Mul" } scaleMul || view.SoleReader(scaleValue) != outputMul) continue;
            string activationScale = quantize.Output[1];
            string weightScale = scaleMul.Input[0] == activationScale ? scaleMul.Input[1] : scaleMul.Input[1] == activationScale ? scaleMul.Input[0] : "";
            if (weightScale.Length == 0 || view.Initializer(weightScale) is not { } ws || ws.Dims.Count > 1) continue;

            var fused = new NodeProto { OpType = "DynamicQuantizeMatMul", Domain = PlanBuilder.FusedDomain, Name = matmul.Name };
            fused.Input.AddRange([quantize.Input[0], matmul.Input[1], matmul.Input[3], weightScale]);
            string output = outputMul.Output[0];
            NodeProto last = outputMul;
            if (view.SoleReader(output) is { OpType: "Add" } add && GraphView.IsDefaultDomain(add))
            {
                string other = add.Input[0] == output ? add.Input[1] : add.Input[0];
                if (view.Initializer(other) is { Dims.Count: 1 } bias && bias.Dims[0] == (view.Initializer(matmul.Input[1])?.Dims.LastOrDefault() ?? -1))
                {
                    fused.Input.Add(other);
                    output = add.Output[0];
                    last = add;
                }
            }
            fused.Output.Add(output);
            replacements[last] = fused;
            removed.UnionWith([matmul, cast, outputMul, scaleMul]);
            if (!ReferenceEquals(last, outputMul)) removed.Add(last);
        }
        if (replacements.Count == 0) return nodes;

        var result = new List<NodeProto>(nodes.Count);
        foreach (var node in nodes)
        {
            if (replacements.TryGetValue(node, out var fused)) result.Add(fused);
            else if (!removed.Contains(node)) result.Add(node);
        }
        // A DynamicQuantizeLinear whose outputs nobody reads any more goes too.
        var read = new HashSet<string>(result.SelectMany(n => n.Input), StringComparer.Ordinal);
        var graphOutputs = model.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        return result.Where(n => !(n.OpType == "DynamicQuantizeLinear" && GraphView.IsDefaultDomain(n)
            && n.Output.All(o => o.Length == 0 || (!read.Contains(o) && !graphOutputs.Contains(o))))).ToList();
    }
}
