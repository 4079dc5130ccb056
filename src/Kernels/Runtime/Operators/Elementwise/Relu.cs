using System.Numerics.Tensors;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Relu: max(x, 0).</summary>
[OnnxOperator("Relu", 6)]
internal sealed class Relu : Operator
{
    public static Operator Create(OperatorBuildContext context) => new Relu();

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        switch (x.ElementType)
        {
            case TensorElementType.Float32:
                TensorPrimitives.Max(x.AsSpan<float>(), 0f, call.Output(0, x.ElementType, x.ShapeArray).AsSpan<float>());
                break;
            case TensorElementType.Float64:
                TensorPrimitives.Max(x.AsSpan<double>(), 0d, call.Output(0, x.ElementType, x.ShapeArray).AsSpan<double>());
                break;
            case TensorElementType.Int32:
                TensorPrimitives.Max(x.AsSpan<int>(), 0, call.Output(0, x.ElementType, x.ShapeArray).AsSpan<int>());
                break;
            case TensorElementType.Int64:
                TensorPrimitives.Max(x.AsSpan<long>(), 0L, call.Output(0, x.ElementType, x.ShapeArray).AsSpan<long>());
                break;
            case TensorElementType.Int8:
                TensorPrimitives.Max(x.AsSpan<sbyte>(), (sbyte)0, call.Output(0, x.ElementType, x.ShapeArray).AsSpan<sbyte>());
                break;
            case TensorElementType.Float16:
                FloatWidening.Any(call, (c, _) => Run(c));
                break;
            default:
                throw new NotSupportedException($"{call.Context.Node}: Relu of {x.ElementType.DisplayName()} is not supported.");
        }
    }
}
