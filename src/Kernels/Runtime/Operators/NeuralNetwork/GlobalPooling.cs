using System.Numerics;
using System.Numerics.Tensors;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>GlobalAveragePool and GlobalMaxPool: the mean or the maximum of each (image, channel) plane, spatial axes kept as 1.</summary>
[OnnxOperator("GlobalAveragePool", 1)]
[OnnxOperator("GlobalMaxPool", 1)]
internal sealed class GlobalPool(bool max) : Operator
{
    public static Operator Create(OperatorBuildContext context) => new GlobalPool(context.Node.OpType == "GlobalMaxPool");

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        switch (x.ElementType)
        {
            case TensorElementType.Float32: Run<float>(call, x); break;
            case TensorElementType.Float64: Run<double>(call, x); break;
            case TensorElementType.Float16: FloatWidening.Any(call, (c, _) => Run(c)); break;
            default: throw new NotSupportedException($"{call.Context.Node}: {(max ? "GlobalMaxPool" : "GlobalAveragePool")} of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    private void Run<T>(OperatorCall call, Tensor x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (x.Rank < 2) throw new InvalidOperationException($"{call.Context.Node}: input of shape {Tensor.Format(x.Shape)} has no channel axis.");
        var shape = x.ShapeArray.ToArray();
        for (int i = 2; i < shape.Length; i++) shape[i] = 1;
        var y = call.Output(0, x.ElementType, shape).AsSpan<T>();
        var source = x.AsSpan<T>();
        int planes = shape[0] * shape[1];
        int size = planes == 0 ? 0 : x.Length / planes;
        T count = T.CreateTruncating(size);
        for (int p = 0; p < planes; p++)
        {
            var plane = source.Slice(p * size, size);
            y[p] = max ? TensorPrimitives.Max(plane) : TensorPrimitives.Sum(plane) / count;
        }
    }
}
