using Quantize.Core.Calibration;
using Quantize.Core.Quantization;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Running;

/// <summary>Model input samples from a folder, in any layout <see cref="CalibrationData.FromFolder(string, IReadOnlyList{ValueInfo}, int)"/> reads, or one sample.</summary>
public static class SampleFolders
{
    /// <summary>
    /// The samples under <paramref name="folder"/>, read one at a time in ordinal order of their names: sub-folders with
    /// one <c>NAME.pb</c> or <c>NAME.npy</c> per input, <c>.npz</c> files, or <c>.npy</c> files (one-input models); a folder
    /// holding only <c>NAME.pb</c> tensor files is one sample (see <see cref="InputData.Read"/>).
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    public static SampleSource Open(string folder, IReadOnlyList<ValueInfo> inputs)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: the data folder does not exist.");
        bool oneSample = !Directory.EnumerateDirectories(folder).Any()
            && !Directory.EnumerateFiles(folder).Any(f => f.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".npz", StringComparison.OrdinalIgnoreCase));
        if (oneSample) return () => [InputData.Read(folder, inputs)];
        var data = CalibrationData.FromFolder(folder, inputs);
        return () => data.Select(s => (IReadOnlyDictionary<string, Tensor>)s.Inputs);
    }
}
