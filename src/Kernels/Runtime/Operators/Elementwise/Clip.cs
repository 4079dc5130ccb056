using System.Numerics;
using System.Numerics.Tensors;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Clip: min(max(x, lower), upper), so upper wins when lower &gt; upper (as numpy's clip). Bounds are the
/// min/max attributes before opset 11 and optional scalar inputs from 11. Every numeric type, float16 through float32.
/// </summary>
[OnnxOperator("Clip", 1)]
[OnnxOperator("Clip", 11)]
internal sealed class Clip(float? lowerAttribute, float? upperAttribute, bool boundsAreInputs) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        if (context.Opset >= 11) return new Clip(null, null, boundsAreInputs: true);
        float? lower = context.Attribute("min") is null ? null : context.Float("min", float.MinValue);
        float? upper = context.Attribute("max") is null ? null : context.Float("max", float.MaxValue);
        return new Clip(lower, upper, boundsAreInputs: false);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        switch (x.ElementType)
        {
            case TensorElementType.Float32: Apply<float>(call, x); break;
            case TensorElementType.Float64: Apply<double>(call, x); break;
            case TensorElementType.Int8: Apply<sbyte>(call, x); break;
            case TensorElementType.UInt8: Apply<byte>(call, x); break;
            case TensorElementType.Int16: Apply<short>(call, x); break;
            case TensorElementType.UInt16: Apply<ushort>(call, x); break;
            case TensorElementType.Int32: Apply<int>(call, x); break;
            case TensorElementType.UInt32: Apply<uint>(call, x); break;
            case TensorElementType.Int64: Apply<long>(call, x); break;
            case TensorElementType.UInt64: Apply<ulong>(call, x); break;
            case TensorElementType.Float16: FloatWidening.Any(call, (c, _) => Run(c)); break;
            default: throw new NotSupportedException($"{call.Context.Node}: Clip of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    private void Apply<T>(OperatorCall call, Tensor x) where T : unmanaged, INumber<T>
    {
        T? lower, upper;
        if (boundsAreInputs)
        {
            lower = Bound<T>(call, 1);
            upper = Bound<T>(call, 2);
        }
        else
        {
            lower = lowerAttribute is { } l ? T.CreateSaturating(l) : null;
            upper = upperAttribute is { } u ? T.CreateSaturating(u) : null;
        }
        var source = x.AsSpan<T>();
        var target = call.Output(0, x.ElementType, x.ShapeArray).AsSpan<T>();
        if (lower is { } low)
        {
            TensorPrimitives.Max(source, low, target);
            source = target;
        }
        if (upper is { } high) TensorPrimitives.Min(source, high, target);
        else if (lower is null) source.CopyTo(target);
    }

    private static T? Bound<T>(OperatorCall call, int index) where T : unmanaged
    {
        if (call.OptionalInput(index) is not { } bound) return null;
        if (bound.Length != 1) throw new InvalidOperationException($"{call.Context.Node}: Clip bound {index} must be a scalar; it has shape {Tensor.Format(bound.Shape)}.");
        if (bound.Buffer.Data is not T[] values) throw new InvalidOperationException($"{call.Context.Node}: Clip bound {index} is {bound.ElementType.DisplayName()}, not the input's type.");
        return values[0];
    }
}
