using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Quantization;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// QuantizeLinear: per-tensor, per-axis (opset 13) and blocked (opset 21), to int8/uint8/int16/uint16/int4/uint4,
/// bit-exact with ONNX's definition (division by the scale, round half to even, saturate).
/// </summary>
[OnnxOperator("QuantizeLinear", 10)]
internal sealed class QuantizeLinearOperator(int axis, int blockSize, TensorElementType? outputType) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        TensorElementType? type = null;
        long outputDtype = context.Int("output_dtype", 0);
        if (outputDtype != 0) type = OnnxElementTypes.ToElementType((int)outputDtype);
        if (context.ConstantInput(2) is { } zp) type = zp.ElementType;
        if (type is { } t && !QuantizationInputs.IsSupportedQuantizedType(t))
            throw context.Unsupported($"QuantizeLinear to {t.DisplayName()} (the runtime quantizes to 8-, 16- and 4-bit integers)");
        if (context.Attribute("precision") is not null && context.Int("precision", 0) != 0 && context.Int("precision", 0) != 1)
            throw context.Unsupported("a 'precision' other than float32");
        return new QuantizeLinearOperator((int)context.Int("axis", 1), (int)context.Int("block_size", 0), type);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        string node = call.Context.Node;
        var scales = QuantizationInputs.Scales(call.Input(1), node);
        var zeroPointTensor = call.OptionalInput(2);
        var type = zeroPointTensor?.ElementType ?? outputType ?? TensorElementType.UInt8;
        if (!QuantizationInputs.IsSupportedQuantizedType(type))
            throw new NotSupportedException($"{node}: QuantizeLinear to {type.DisplayName()} is not supported.");
        var zeroPoints = QuantizationInputs.ZeroPoints(zeroPointTensor, node);
        var output = call.Output(0, type, x.ShapeArray);
        LinearQuantization.QuantizeUnpacked(QuantizationInputs.Floats(x, node), QuantizationInputs.LongShape(x), scales, zeroPoints,
            axis, blockSize, type, QuantizationInputs.Bytes(output));
    }
}

/// <summary>
/// DequantizeLinear: per-tensor, per-axis and blocked, from int8/uint8/int16/uint16/int4/uint4/int32 to float32
/// (float16 when the scale is float16), as ONNX's reference computes it: (float(x) - zero_point) * scale in float32.
/// </summary>
[OnnxOperator("DequantizeLinear", 10)]
internal sealed class DequantizeLinearOperator(int axis, int blockSize, TensorElementType? outputType) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        if (context.ConstantInput(0) is { } x && !(QuantizationInputs.IsSupportedQuantizedType(x.ElementType) || x.ElementType == TensorElementType.Int32))
            throw context.Unsupported($"DequantizeLinear from {x.ElementType.DisplayName()}");
        long outputDtype = context.Int("output_dtype", 0);
        TensorElementType? type = outputDtype != 0 ? OnnxElementTypes.ToElementType((int)outputDtype) : null;
        if (type is { } t && t is not (TensorElementType.Float32 or TensorElementType.Float16))
            throw context.Unsupported($"DequantizeLinear to {t.DisplayName()}");
        return new DequantizeLinearOperator((int)context.Int("axis", 1), (int)context.Int("block_size", 0), type);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        string node = call.Context.Node;
        if (!(QuantizationInputs.IsSupportedQuantizedType(x.ElementType) || x.ElementType == TensorElementType.Int32))
            throw new NotSupportedException($"{node}: DequantizeLinear from {x.ElementType.DisplayName()} is not supported.");
        var scaleTensor = call.Input(1);
        var scales = QuantizationInputs.Scales(scaleTensor, node);
        var zeroPoints = QuantizationInputs.ZeroPoints(call.OptionalInput(2), node);
        var type = outputType ?? (scaleTensor.ElementType == TensorElementType.Float16 ? TensorElementType.Float16 : TensorElementType.Float32);
        var shape = QuantizationInputs.LongShape(x);
        if (type == TensorElementType.Float32)
        {
            var output = call.Output(0, type, x.ShapeArray);
            LinearQuantization.DequantizeUnpacked(QuantizationInputs.Bytes(x), x.ElementType, shape, scales, zeroPoints, axis, blockSize, output.AsSpan<float>());
        }
        else
        {
            var values = new float[x.Length];
            LinearQuantization.DequantizeUnpacked(QuantizationInputs.Bytes(x), x.ElementType, shape, scales, zeroPoints, axis, blockSize, values);
            var output = call.Output(0, type, x.ShapeArray).AsSpan<Half>();
            for (int i = 0; i < values.Length; i++) output[i] = (Half)values[i];
        }
    }
}

/// <summary>DynamicQuantizeLinear: uint8 quantization with parameters chosen from the data (ONNX's exact rule).</summary>
[OnnxOperator("DynamicQuantizeLinear", 11)]
internal sealed class DynamicQuantizeLinearOperator : Operator
{
    public static Operator Create(OperatorBuildContext context) => new DynamicQuantizeLinearOperator();

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        var input = QuantizationInputs.Floats(x, call.Context.Node);
        var y = call.Output(0, TensorElementType.UInt8, x.ShapeArray);
        var parameters = DynamicQuantizeLinear.Quantize(input, y.AsSpan<byte>());
        call.Output(1, TensorElementType.Float32, []).AsSpan<float>()[0] = parameters.Scale;
        call.Output(2, TensorElementType.UInt8, []).AsSpan<byte>()[0] = (byte)parameters.ZeroPoint;
    }
}
