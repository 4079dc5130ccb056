using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Runs a float32 computation for float16 (or bfloat16) tensors: inputs widened to float32, the result
/// rounded back. ONNX's reference computes these ops in float32 as well for most operators.
/// </summary>
internal static class FloatWidening
{
    /// <summary>Widens every float16 input, runs <paramref name="run"/> as float32, narrows every float32 output back to float16.</summary>
    public static void Binary(OperatorCall call, Action<OperatorCall, TensorElementType> run) => Any(call, run);

    public static void Any(OperatorCall call, Action<OperatorCall, TensorElementType> run)
    {
        var inputs = new Tensor?[call.Inputs.Length];
        for (int i = 0; i < inputs.Length; i++)
            inputs[i] = call.Inputs[i] is { ElementType: TensorElementType.Float16 } half ? ToFloat(half) : call.Inputs[i];
        var outputs = new Tensor?[call.OutputCount];
        run(new OperatorCall(inputs, outputs, call.Context), TensorElementType.Float32);
        for (int i = 0; i < outputs.Length; i++)
        {
            if (outputs[i] is { } result)
            {
                if (result.ElementType == TensorElementType.Float32)
                {
                    var half = call.Output(i, TensorElementType.Float16, result.ShapeArray);
                    var source = result.AsSpan<float>();
                    var target = half.AsSpan<Half>();
                    for (int j = 0; j < source.Length; j++) target[j] = (Half)source[j];
                    result.Buffer.Release();
                }
                else
                {
                    call.OutputNew(i, result);
                }
            }
        }
        for (int i = 0; i < inputs.Length; i++)
        {
            if (!ReferenceEquals(inputs[i], call.Inputs[i])) inputs[i]!.Buffer.Release();
        }
    }

    public static Tensor ToFloat(Tensor half)
    {
        var result = TensorPool.Rent(TensorElementType.Float32, half.ShapeArray);
        var source = half.AsSpan<Half>();
        var target = result.AsSpan<float>();
        for (int j = 0; j < source.Length; j++) target[j] = (float)source[j];
        return result;
    }
}
