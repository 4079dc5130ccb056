using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>
/// Fuses MatMul(A, W) + Add(bias) with W a constant float 2-D weight and bias a constant [N] vector into
/// one MatMulAdd that adds the bias as the GEMM's rows are written: the same additions, one pass less.
/// </summary>
internal sealed class MatMulAddFusion : IGraphRewrite
{
    public List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes)
    {
        var view = new GraphView(model, nodes);
        var replace = new Dictionary<NodeProto, NodeProto>(ReferenceEqualityComparer.Instance);
        var remove = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        foreach (var matmul in nodes)
        {
            if (matmul.OpType != "MatMul" || !GraphView.IsDefaultDomain(matmul)) continue;
            if (view.Initializer(matmul.Input[1]) is not { DataType: (int)TensorProto.Types.DataType.Float, Dims.Count: 2 } weight) continue;
            if (view.SoleReader(matmul.Output[0]) is not { OpType: "Add" } add || !GraphView.IsDefaultDomain(add)) continue;
            string other = add.Input[0] == matmul.Output[0] ? add.Input[1] : add.Input[0];
            if (view.Initializer(other) is not { DataType: (int)TensorProto.Types.DataType.Float, Dims.Count: 1 } bias || bias.Dims[0] != weight.Dims[1]) continue;
            var fused = new NodeProto { OpType = "MatMulAdd", Domain = PlanBuilder.FusedDomain, Name = matmul.Name };
            fused.Input.AddRange([matmul.Input[0], matmul.Input[1], other]);
            fused.Output.Add(add.Output[0]);
            replace[add] = fused;
            remove.Add(matmul);
        }
        return GraphRewrites.Rebuild(nodes, replace, remove);
    }
}
